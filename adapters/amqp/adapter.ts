import type { Namespace } from "socket.io";
import type { BroadcastOptions, ClusterMessage, ClusterResponse } from "socket.io-adapter";
import { ClusterAdapterWithHeartbeat, MessageType } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { EMITTER_UID } from "./codec.js";
import type { ResolvedAdapterOptions } from "./options.js";
import { ClusterRequests, type RequestKind, type Settle } from "./requests.js";
import {
  allKey,
  allRoomsPattern,
  encodeOptions,
  nodeKey,
  Router,
  roomKey,
  type WireBroadcastOptions,
} from "./routing.js";
import type { AmqpTransport, TransportStats } from "./transport.js";

type PublishInput = Parameters<ClusterAdapterWithHeartbeat["publish"]>[0];

/**
 * Socket.IO adapter over RabbitMQ. As socket.io-adapter requires, it
 * implements `doPublish`/`doPublishResponse` and feeds `onMessage` (responses
 * included) from the transport. On top of the base class it keeps room
 * bindings in step with local membership (see routing.ts), and owns cluster
 * requests so that they honour `requestsTimeoutMs` and `partialResults` and
 * stop waiting for a node the moment it leaves (close message or heartbeat
 * timeout).
 */
export class AmqpAdapter extends ClusterAdapterWithHeartbeat {
  private readonly peers = new Map<string, number>(); // uid -> last message time
  private readonly requestsInFlight: ClusterRequests;
  private readonly preconnect = new Set<string>(); // socket ids bound before join
  private readonly registered: Promise<void>;
  private readonly removeHandler: () => void;
  private readonly removeReconnectListener: () => void;
  private readonly livenessTimer: NodeJS.Timeout;
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
    this.requestsInFlight = new ClusterRequests({
      nsp: nsp.name,
      partialResults: opts.partialResults,
      logger: opts.logger,
      onPartial: (missing) => {
        transport.count("partialResults");
        transport.count("missingResponses", missing);
      },
    });
    this.removeHandler = transport.addHandler(nsp.name, (m) => this.onMessage(m as ClusterMessage));
    // After an outage, announce ourselves again so peers that dropped us (and
    // that we dropped) are counted at once, not at the next heartbeat.
    this.removeReconnectListener = transport.onReconnect(() =>
      this.publish({ type: MessageType.INITIAL_HEARTBEAT }),
    );
    this.registered = Promise.all(this.ownKeys().map((key) => transport.bind(key))).then(
      () => undefined,
    );
    this.livenessTimer = setInterval(
      () => this.checkLiveness(),
      Math.min(1_000, opts.heartbeatTimeoutMs / 4),
    );
    if (opts.roomRouting) {
      // Socket.IO joins a socket to its own id room without awaiting it and
      // then tells the client its id; binding that key first guarantees an
      // emit to the id from another node cannot overtake the binding.
      nsp.use((socket, next) => {
        if (this.closed) return next();
        this.preconnect.add(socket.id);
        this.transport.bind(roomKey(nsp.name, socket.id)).then(() => next());
      });
    }
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

  override serverCount(): Promise<number> {
    return Promise.resolve(1 + this.peers.size);
  }

  override addAll(id: string, rooms: Set<string>): Promise<void> {
    super.addAll(id, rooms);
    this.preconnect.delete(id);
    if (!this.opts.roomRouting || this.closed) return Promise.resolve();
    // Resolves once every room's key is bound, so `await socket.join(room)`
    // means "broadcasts to room from any node now reach this socket".
    return Promise.all(
      [...rooms].map((room) => this.transport.bind(roomKey(this.nsp.name, room))),
    ).then(() => undefined);
  }

  override del(id: string, room: string): void {
    super.del(id, room);
    this.unbindIfEmpty([room]);
  }

  override delAll(id: string): void {
    const rooms = [...(this.sids.get(id) ?? []), id];
    super.delAll(id);
    this.preconnect.delete(id);
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
    if (message.uid !== this.uid && message.uid !== EMITTER_UID) {
      if (message.type === MessageType.ADAPTER_CLOSE) this.forgetNode(message.uid);
      else this.peers.set(message.uid, Date.now());
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
      const rooms = message.data.rooms;
      return Promise.all(rooms.map((r) => this.transport.bind(roomKey(this.nsp.name, r)))).then(
        () => {
          super.onMessage(message, offset);
          this.unbindIfEmpty(rooms); // the matching sockets may have left meanwhile
        },
      );
    }
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

  override onResponse(response: ClusterResponse): void {
    if (
      response.type !== MessageType.FETCH_SOCKETS_RESPONSE &&
      response.type !== MessageType.SERVER_SIDE_EMIT_RESPONSE
    ) {
      return super.onResponse(response);
    }
    const answers =
      response.type === MessageType.SERVER_SIDE_EMIT_RESPONSE
        ? [response.data.packet]
        : Array.isArray(response.data.sockets)
          ? response.data.sockets
          : [];
    this.requestsInFlight.answer(response.data.requestId, response.uid, answers);
  }

  override async fetchSockets(opts: BroadcastOptions): Promise<unknown[]> {
    const local: unknown[] = await super.fetchSockets({
      rooms: opts.rooms,
      except: opts.except,
      flags: { local: true },
    });
    if (opts.flags?.local || this.peers.size === 0 || this.closed) return local;
    return new Promise((resolve, reject) => {
      this.request(
        "fetchSockets",
        local,
        opts.flags?.timeout ?? this.opts.requestsTimeoutMs,
        (err, responses) => (err ? reject(err) : resolve(responses)),
        (requestId) => ({
          type: MessageType.FETCH_SOCKETS,
          data: { opts: encodeOptions(opts), requestId },
        }),
      );
    });
  }

  override async serverSideEmit(packet: unknown[]): Promise<void> {
    if (typeof packet[packet.length - 1] !== "function") {
      this.publish({ type: MessageType.SERVER_SIDE_EMIT, data: { packet } });
      return;
    }
    const ack = packet.pop() as Settle;
    if (this.peers.size === 0) return ack(null, []);
    this.request("serverSideEmit", [], this.opts.requestsTimeoutMs, ack, (requestId) => ({
      type: MessageType.SERVER_SIDE_EMIT,
      data: { requestId, packet },
    }));
  }

  override publish(message: PublishInput): void {
    if (!this.closed) super.publish(message);
  }

  /** Idempotent. Announces the departure, settles pending requests, releases the shared transport. */
  override close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  protected override async doPublish(message: ClusterMessage): Promise<string> {
    await Promise.all(
      this.router.route(message).map((r) => this.transport.publish(r.key, r.message)),
    );
    return ""; // no offsets: RabbitMQ queues are not replayable (no connection state recovery)
  }

  protected override doPublishResponse(
    requesterUid: string,
    response: ClusterResponse,
  ): Promise<void> {
    return this.transport.publish(nodeKey(this.nsp.name, requesterUid), response);
  }

  private async doClose(): Promise<void> {
    super.close(); // publishes ADAPTER_CLOSE (peers drop us at once) and clears the base timers
    this.closed = true;
    clearInterval(this.livenessTimer);
    this.requestsInFlight.abortAll(
      new SwitchboardError(ErrorCode.CLOSED, "adapter closed before all nodes answered"),
    );
    this.removeHandler();
    this.removeReconnectListener();
    const transportClosed = await this.release();
    if (!transportClosed) {
      const keys = [
        ...this.ownKeys(),
        ...[...this.rooms.keys(), ...this.preconnect].map((r) => roomKey(this.nsp.name, r)),
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

  private unbindIfEmpty(rooms: Iterable<string>): void {
    if (!this.opts.roomRouting || this.closed) return;
    for (const room of rooms) {
      if (!this.rooms.has(room) && !this.preconnect.has(room))
        void this.transport.unbind(roomKey(this.nsp.name, room));
    }
  }

  private request(
    kind: RequestKind,
    responses: unknown[],
    timeoutMs: number,
    settle: Settle,
    build: (requestId: string) => PublishInput,
  ): void {
    const requestId = this.requestsInFlight.start(
      kind,
      this.peers.keys(),
      responses,
      timeoutMs,
      settle,
    );
    this.publish(build(requestId));
  }

  /** A node is gone (ADAPTER_CLOSE or silence): stop counting it and stop waiting for it. */
  private forgetNode(uid: string): void {
    this.peers.delete(uid);
    this.requestsInFlight.nodeGone(uid);
  }

  private checkLiveness(): void {
    const deadline = Date.now() - this.opts.heartbeatTimeoutMs;
    for (const [uid, lastSeen] of [...this.peers]) {
      if (lastSeen < deadline) {
        this.opts.logger.info(
          { nsp: this.nsp.name, node: uid },
          "node missed its heartbeats; removed",
        );
        this.forgetNode(uid);
      }
    }
  }
}
