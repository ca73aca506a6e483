import type { Namespace } from "socket.io";
import type * as SocketIoAdapter from "socket.io-adapter";
import type { BroadcastOptions, ClusterMessage, ClusterResponse, Room } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { guardServerSideEmit } from "../server-side-emit.js";
import { ClusterAdapterWithHeartbeat, MessageType } from "./cjs.js";
import { SwitchboardMessageType, type WireMessage } from "./codec.js";
import type { ResolvedAdapterOptions } from "./options.js";
import {
  abortAll,
  answerAllRooms,
  type BaseInternals,
  baseInternals,
  type RequestKind,
  type Settle,
  startRequest,
} from "./requests.js";
import {
  allKey,
  allRoomsPattern,
  encodeOptions,
  hasRoomKey,
  nodeKey,
  type Routed,
  Router,
  roomKey,
  type WireBroadcastOptions,
} from "./routing.js";
import type { AmqpTransport, TransportStats } from "./transport.js";

type PublishInput = Parameters<SocketIoAdapter.ClusterAdapterWithHeartbeat["publish"]>[0];

/**
 * Socket.IO adapter over RabbitMQ. As socket.io-adapter requires, it
 * implements `doPublish`/`doPublishResponse` and feeds `onMessage` (responses
 * included) from the transport.
 *
 * Cluster membership is the base class's alone: `nodesMap`, its heartbeats,
 * its clean-up timer and its `removeNode` (which also strikes a leaving node
 * off pending requests). In-flight requests live in the base's request map
 * (`adapter.requests`). What this class adds, and only that:
 *
 * - room-aware bindings (`roomRouting: true`): a room's routing key is bound
 *   while the node has a local member, and a remote `socketsJoin` binds before
 *   it applies. Socket-id rooms are never bound (routing.ts sends messages
 *   naming one on the "all" key), so a connection costs no broker round trip;
 * - requests that honour `requestsTimeoutMs` (or the `timeout` flag), fail with
 *   @socket.io/redis-adapter's messages as `SWB_ERR_REQUEST_TIMEOUT`, resolve
 *   with what arrived under `partialResults`, and are settled on close;
 * - `allRooms()`, which the base lacks (two message kinds of our own);
 * - a new INITIAL_HEARTBEAT after the transport reconnects, so peers count us
 *   (and we them) at once, not at the next heartbeat;
 * - publishes that fail are counted (`stats().dropped`) and logged, never lost
 *   silently in the base's debug-only catch.
 */
export class AmqpAdapter extends ClusterAdapterWithHeartbeat {
  private readonly internals: BaseInternals;
  private readonly registered: Promise<void>;
  private readonly removeHandler: () => void;
  private readonly removeReconnectListener: () => void;
  private readonly router = new Router();
  /** Set while a remote join waits for its bindings; later messages queue behind it. */
  private inbox: Promise<void> | undefined;
  private closed = false;
  private closing: Promise<void> | undefined;

  constructor(
    nsp: Namespace,
    private readonly transport: AmqpTransport,
    private readonly opts: ResolvedAdapterOptions,
    private readonly release: () => Promise<boolean>,
  ) {
    super(nsp, {
      heartbeatInterval: opts.heartbeatIntervalMs,
      heartbeatTimeout: opts.heartbeatTimeoutMs,
    });
    this.internals = baseInternals(this);
    // A listener of a remote serverSideEmit that throws is logged with its event, not dropped
    // with the whole message (the transport's handler catch) before the other listeners ran.
    guardServerSideEmit(nsp, opts.logger);
    this.removeHandler = transport.addHandler(
      nsp.name,
      (m) => this.onMessage(m as ClusterMessage),
      this.uid,
    );
    this.removeReconnectListener = transport.onReconnect(() =>
      this.publish({ type: MessageType.INITIAL_HEARTBEAT }),
    );
    this.registered = Promise.all(this.ownKeys().map((key) => transport.bind(key))).then(
      () => undefined,
    );
  }

  /** This node's id in the cluster (the sender id of its messages). */
  get nodeId(): string {
    return this.uid;
  }

  /** True while the broker channel is up (for readiness probes). */
  get connected(): boolean {
    return this.transport.connected;
  }

  /** Process-wide counters of the shared transport. */
  stats(): TransportStats {
    return this.transport.stats();
  }

  /** Waits for the queue and this namespace's keys to be bound before the first heartbeat. */
  override async init(): Promise<void> {
    await this.registered;
    if (!this.closed) super.init();
  }

  override addAll(id: string, rooms: Set<Room>): Promise<void> {
    super.addAll(id, rooms);
    if (!this.opts.roomRouting || this.closed) return Promise.resolve();
    // Resolves once every room's key is bound, so `await socket.join(room)`
    // means "broadcasts to room from any node now reach this socket". The
    // socket's own id room needs no key: messages naming it travel on "all".
    const keys = [...rooms].filter(hasRoomKey).map((room) => roomKey(this.nsp.name, room));
    if (keys.length === 0) return Promise.resolve();
    return Promise.all(keys.map((key) => this.transport.bind(key))).then(() => undefined);
  }

  override del(id: string, room: Room): void {
    super.del(id, room);
    this.unbindIfEmpty([room]);
  }

  override delAll(id: string): void {
    const rooms: Room[] = [...(this.sids.get(id) ?? [])];
    super.delAll(id);
    this.unbindIfEmpty(rooms);
  }

  override onMessage(message: ClusterMessage, offset?: string): void {
    if (this.inbox) {
      this.enqueue(() => this.process(message, offset));
      return;
    }
    const waiting = this.process(message, offset);
    if (waiting) this.enqueue(() => waiting);
  }

  private enqueue(step: () => Promise<void> | undefined): void {
    const tail = (this.inbox ?? Promise.resolve()).then(step).catch((err: unknown) => {
      this.opts.logger.warn({ err, nsp: this.nsp.name }, "cluster message failed, dropped");
    });
    this.inbox = tail;
    void tail.then(() => {
      if (this.inbox === tail) this.inbox = undefined;
    });
  }

  /** Handles one message; returns a promise only when later messages must wait for it. */
  private process(message: ClusterMessage, offset?: string): Promise<void> | undefined {
    if (this.closed) return undefined;
    const own = message as WireMessage;
    if (own.type === SwitchboardMessageType.ALL_ROOMS && own.uid !== this.uid) {
      this.send(
        {
          uid: this.uid,
          nsp: this.nsp.name,
          type: SwitchboardMessageType.ALL_ROOMS_RESPONSE,
          data: { requestId: own.data.requestId, rooms: [...this.rooms.keys()] },
        },
        nodeKey(this.nsp.name, own.uid),
      );
    } else if (own.type === SwitchboardMessageType.ALL_ROOMS_RESPONSE) {
      const rooms = Array.isArray(own.data.rooms) ? own.data.rooms : [];
      answerAllRooms(this.internals, own.data.requestId, own.uid, rooms);
    }
    if (
      this.opts.roomRouting &&
      message.type === MessageType.SOCKETS_JOIN &&
      message.uid !== this.uid &&
      this.hasLocalMatch(message.data.opts)
    ) {
      // Bind the new rooms before the join becomes visible, so that whoever
      // learns of it (from us, or by asking us) can already reach the room;
      // messages arriving meanwhile wait, to keep their order.
      const rooms = message.data.rooms.filter(hasRoomKey);
      if (rooms.length > 0) {
        return Promise.all(rooms.map((r) => this.transport.bind(roomKey(this.nsp.name, r)))).then(
          () => {
            super.onMessage(message, offset);
            this.unbindIfEmpty(rooms); // the matching sockets may have left meanwhile
          },
        );
      }
    }
    // For our own kinds this only records the sender as alive: the base ignores kinds it does not know.
    super.onMessage(message, offset);
    return undefined;
  }

  /** Whether any local socket matches `opts` (the in-memory adapter's selection rule). */
  private hasLocalMatch(opts: WireBroadcastOptions): boolean {
    const except = new Set<string>();
    for (const room of opts.except ?? [])
      for (const id of this.rooms.get(room) ?? []) except.add(id);
    const candidates = opts.rooms.length
      ? opts.rooms.flatMap((room) => [...(this.rooms.get(room) ?? [])])
      : [...this.sids.keys()];
    return candidates.some((id) => !except.has(id) && this.nsp.sockets.has(id));
  }

  override async fetchSockets(opts: BroadcastOptions): Promise<unknown[]> {
    const local: unknown[] = await super.fetchSockets({
      rooms: opts.rooms,
      except: opts.except,
      flags: { local: true },
    });
    if (opts.flags?.local || this.internals.nodesMap.size === 0 || this.closed) return local;
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.flags?.timeout ?? this.opts.requestsTimeoutMs;
      const requestId = this.startRequest("fetchSockets", local, timeoutMs, (err, responses) =>
        err ? reject(err) : resolve(responses),
      );
      this.publish({
        type: MessageType.FETCH_SOCKETS,
        data: { opts: encodeOptions(opts), requestId },
      });
    });
  }

  override async serverSideEmit(packet: unknown[]): Promise<void> {
    if (typeof packet[packet.length - 1] !== "function") {
      this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { packet } });
      return;
    }
    const ack = packet.pop() as Settle;
    if (this.internals.nodesMap.size === 0 || this.closed) return ack(null, []);
    // The user's callback runs on its own tick, outside the message path's
    // try/catch: what it throws surfaces (uncaught) as with the official adapters.
    const settle: Settle = (err, responses) => process.nextTick(ack, err, responses);
    const requestId = this.startRequest("serverSideEmit", [], this.opts.requestsTimeoutMs, settle);
    this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { requestId, packet } });
  }

  /**
   * Every room of every node of this namespace (socket-id rooms included), as
   * @socket.io/redis-adapter's `allRooms()`. Waits for each node at most
   * `requestsTimeoutMs`; then rejects with `SWB_ERR_REQUEST_TIMEOUT`, or with
   * `partialResults` resolves with the rooms that arrived.
   */
  async allRooms(): Promise<Set<Room>> {
    const local = new Set<Room>(this.rooms.keys());
    if (this.internals.nodesMap.size === 0 || this.closed) return local;
    return new Promise((resolve, reject) => {
      const requestId = this.startRequest(
        "allRooms",
        [...local],
        this.opts.requestsTimeoutMs,
        (err, rooms) => (err ? reject(err) : resolve(new Set(rooms as Room[]))),
      );
      this.send(
        {
          uid: this.uid,
          nsp: this.nsp.name,
          type: SwitchboardMessageType.ALL_ROOMS,
          data: { requestId },
        },
        allKey(this.nsp.name),
      );
    });
  }

  override publish(message: PublishInput): void {
    if (!this.closed) super.publish(message);
  }

  /** Idempotent. Announces the departure, settles pending requests, releases the shared transport. */
  override close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  /**
   * Not awaited: the base class applies a broadcast or join locally only after
   * this resolves, and local delivery must not wait for the broker (during the
   * first setup, or for 'drain'). There are no offsets to wait for anyway:
   * RabbitMQ queues are not replayable (no connection state recovery).
   */
  protected override async doPublish(message: ClusterMessage): Promise<string> {
    void this.send(message);
    return "";
  }

  protected override doPublishResponse(
    requesterUid: string,
    response: ClusterResponse,
  ): Promise<void> {
    return this.send(response, nodeKey(this.nsp.name, requesterUid));
  }

  /**
   * Routes and publishes; never rejects. The base class would swallow a
   * rejection in a debug line, so anything failing here is counted and logged.
   */
  private send(message: WireMessage, key?: string): Promise<void> {
    let routed: Routed[];
    try {
      routed = key === undefined ? this.router.route(message) : [{ key, message }];
    } catch (err) {
      this.transport.dropped("unroutable", err, { type: message.type, nsp: this.nsp.name });
      return Promise.resolve();
    }
    // One key is the common case (a broadcast to one room): no array of promises to wait for.
    if (routed.length === 1) {
      const only = routed[0] as Routed;
      return this.transport.publish(only.key, only.message);
    }
    return Promise.all(routed.map((r) => this.transport.publish(r.key, r.message))).then(
      () => undefined,
    );
  }

  private startRequest(
    kind: RequestKind,
    initial: unknown[],
    timeoutMs: number,
    settle: Settle,
  ): string {
    return startRequest(this.internals, kind, initial, timeoutMs, settle, {
      nsp: this.nsp.name,
      partialResults: this.opts.partialResults,
      logger: this.opts.logger,
      onPartial: (missing) => {
        this.transport.count("partialResults");
        this.transport.count("missingResponses", missing);
      },
    });
  }

  private async doClose(): Promise<void> {
    super.close(); // publishes ADAPTER_CLOSE (peers drop us at once) and clears the base timers
    this.closed = true;
    abortAll(
      this.internals,
      new SwitchboardError(ErrorCode.CLOSED, "adapter closed before all nodes answered"),
    );
    this.removeHandler();
    this.removeReconnectListener();
    const transportClosed = await this.release();
    if (!transportClosed) {
      const keys = [
        ...this.ownKeys(),
        ...[...this.rooms.keys()].filter(hasRoomKey).map((r) => roomKey(this.nsp.name, r)),
      ];
      await Promise.all(keys.map((key) => this.transport.unbind(key)));
    }
  }

  private ownKeys(): string[] {
    const nsp = this.nsp.name;
    const keys = [allKey(nsp), nodeKey(nsp, this.uid)];
    if (!this.opts.roomRouting) keys.push(allRoomsPattern(nsp));
    return keys;
  }

  private unbindIfEmpty(rooms: Iterable<Room>): void {
    if (!this.opts.roomRouting || this.closed) return;
    for (const room of rooms) {
      if (hasRoomKey(room) && !this.rooms.has(room))
        void this.transport.unbind(roomKey(this.nsp.name, room));
    }
  }
}
