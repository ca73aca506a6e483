import type { ChannelModel } from "amqplib";
import type { BroadcastFlags, ClusterMessage } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { RESERVED_EVENTS } from "../../core/names.js";
import { MessageType } from "./cjs.js";
import { EMITTER_UID } from "./codec.js";
import { type AmqpTransportOptions, assertConnection, resolveTransportOptions } from "./options.js";
import { Router } from "./routing.js";
import { AmqpTransport, type TransportStats } from "./transport.js";

/** Same options as the adapter's transport: exchange, reconnect, bounds, logger. */
export type AmqpEmitterOptions = AmqpTransportOptions;

/** Events Socket.IO reserves; emitting them would confuse clients. */
export { RESERVED_EVENTS };

const EVENT_PACKET = 2; // socket.io-parser PacketType.EVENT; the receiving node re-encodes binary

interface Target {
  transport: AmqpTransport;
  router: Router;
  nsp: string;
}

/** A room name; numbers are rooms too, as in Socket.IO (`socket.join(123)`). */
type EmitterRoom = string | number;
type Rooms = EmitterRoom | readonly EmitterRoom[];

/**
 * The wire list of rooms. socket.io-adapter types rooms as strings, but a
 * number travels as a number (MessagePack) and is looked up as one by the
 * receiving node, as Socket.IO's in-memory rooms are keyed.
 */
function toList(rooms: Rooms | ReadonlySet<EmitterRoom>): string[] {
  if (rooms instanceof Set) return [...rooms] as string[];
  return (Array.isArray(rooms) ? [...rooms] : [rooms]) as string[];
}

/**
 * Targets rooms, excluded rooms and flags; immutable, each call returns a new
 * operator, as in `@socket.io/redis-emitter`.
 */
export class AmqpBroadcastOperator {
  constructor(
    private readonly target: Target,
    private readonly rooms: ReadonlySet<EmitterRoom> = new Set(),
    private readonly exceptRooms: ReadonlySet<EmitterRoom> = new Set(),
    private readonly flags: BroadcastFlags = {},
  ) {}

  to(rooms: Rooms): AmqpBroadcastOperator {
    return new AmqpBroadcastOperator(
      this.target,
      new Set([...this.rooms, ...toList(rooms)]),
      this.exceptRooms,
      this.flags,
    );
  }

  in(rooms: Rooms): AmqpBroadcastOperator {
    return this.to(rooms);
  }

  except(rooms: Rooms): AmqpBroadcastOperator {
    return new AmqpBroadcastOperator(
      this.target,
      this.rooms,
      new Set([...this.exceptRooms, ...toList(rooms)]),
      this.flags,
    );
  }

  compress(compress: boolean): AmqpBroadcastOperator {
    return new AmqpBroadcastOperator(this.target, this.rooms, this.exceptRooms, {
      ...this.flags,
      compress,
    });
  }

  get volatile(): AmqpBroadcastOperator {
    return new AmqpBroadcastOperator(this.target, this.rooms, this.exceptRooms, {
      ...this.flags,
      volatile: true,
    });
  }

  /** Emits to every matching client of every node. Throws only on a reserved event name. */
  emit(ev: string, ...args: unknown[]): true {
    if (RESERVED_EVENTS.has(ev)) {
      throw new SwitchboardError(ErrorCode.INVALID_ARGUMENT, `"${ev}" is a reserved event name`);
    }
    const packet = { type: EVENT_PACKET, data: [ev, ...args], nsp: this.target.nsp };
    this.send({ type: MessageType.BROADCAST, data: { packet, opts: this.wireOptions() } });
    return true;
  }

  socketsJoin(rooms: Rooms): void {
    this.send({
      type: MessageType.SOCKETS_JOIN,
      data: { opts: this.wireOptions(), rooms: toList(rooms) },
    });
  }

  socketsLeave(rooms: Rooms): void {
    this.send({
      type: MessageType.SOCKETS_LEAVE,
      data: { opts: this.wireOptions(), rooms: toList(rooms) },
    });
  }

  disconnectSockets(close = false): void {
    this.send({ type: MessageType.DISCONNECT_SOCKETS, data: { opts: this.wireOptions(), close } });
  }

  private wireOptions(): { rooms: string[]; except: string[]; flags: BroadcastFlags } {
    return { rooms: toList(this.rooms), except: toList(this.exceptRooms), flags: this.flags };
  }

  private send(message: DistributiveOmitEnvelope): void {
    sendMessage(this.target, message);
  }
}

type DistributiveOmitEnvelope = ClusterMessage extends infer M
  ? M extends ClusterMessage
    ? Omit<M, "uid" | "nsp">
    : never
  : never;

function sendMessage(target: Target, message: DistributiveOmitEnvelope): void {
  const full = { ...message, uid: EMITTER_UID, nsp: target.nsp } as ClusterMessage;
  for (const r of target.router.route(full)) void target.transport.publish(r.key, r.message);
}

/**
 * Publishes to a Switchboard / Socket.IO cluster over RabbitMQ from any Node
 * process that is not a node itself, with the API of `@socket.io/redis-emitter`.
 * Messages are the ones the adapter consumes, sent as uid "emitter", which no
 * node counts as a member or answers to.
 *
 * Opens one channel on `connection` (never closes the connection itself);
 * `close()` releases it. Publishes wait (bounded by `publishTimeoutMs` and
 * `maxPendingPublishes`) for the first setup; during an outage they are
 * dropped and counted, as with the adapter.
 */
export class AmqpEmitter extends AmqpBroadcastOperator {
  private readonly shared: Target;

  constructor(connection: ChannelModel, options: AmqpEmitterOptions = {}, nsp = "/") {
    assertConnection(connection);
    if (typeof nsp !== "string" || !nsp.startsWith("/")) {
      throw new SwitchboardError(
        ErrorCode.INVALID_ARGUMENT,
        'argument "nsp" must be a string starting with "/"',
      );
    }
    const target = {
      transport: new AmqpTransport(connection, resolveTransportOptions(options), false),
      router: new Router(),
      nsp,
    };
    super(target);
    this.shared = target;
  }

  get nsp(): string {
    return this.shared.nsp;
  }

  /** An emitter for another namespace, sharing this one's channel. */
  of(nsp: string): AmqpBroadcastOperatorRoot {
    const name = nsp.startsWith("/") ? nsp : `/${nsp}`;
    return new AmqpBroadcastOperatorRoot({ ...this.shared, nsp: name });
  }

  /** Sends an event to the servers (not the clients) of the cluster. Acks are not supported. */
  serverSideEmit(ev: string, ...args: unknown[]): void {
    serverSideEmit(this.shared, ev, args);
  }

  stats(): TransportStats {
    return this.shared.transport.stats();
  }

  /** Idempotent; releases the channel, flushing what waits for it. The connection stays open. */
  close(): Promise<void> {
    return this.shared.transport.close();
  }
}

/** What `emitter.of(nsp)` returns: the operator API plus serverSideEmit for that namespace. */
export class AmqpBroadcastOperatorRoot extends AmqpBroadcastOperator {
  constructor(private readonly root: Target) {
    super(root);
  }

  serverSideEmit(ev: string, ...args: unknown[]): void {
    serverSideEmit(this.root, ev, args);
  }
}

function serverSideEmit(target: Target, ev: string, args: unknown[]): void {
  if (typeof args[args.length - 1] === "function") {
    throw new SwitchboardError(
      ErrorCode.INVALID_ARGUMENT,
      "serverSideEmit from an emitter does not support acknowledgements",
    );
  }
  sendMessage(target, { type: MessageType.SERVER_SIDE_EMIT, data: { packet: [ev, ...args] } });
}
