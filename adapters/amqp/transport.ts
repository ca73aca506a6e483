import { randomBytes } from "node:crypto";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { backoffDelay, withTimeout } from "../../core/retry.js";
import { MessageType } from "./cjs.js";
import { decodeMessage, encodeMessage, type WireMessage } from "./codec.js";
import type { ResolvedTransportOptions } from "./options.js";
import { Outbox } from "./outbox.js";
import { emptyStats, type TransportStats } from "./stats.js";

export type { TransportStats } from "./stats.js";

type Handler = (message: WireMessage) => void;

const CLOSE_TIMEOUT_MS = 2_000;

/**
 * Connection, channels, topology and reconnect for one process (one factory
 * call), shared by all namespaces, in the manner of amqp-connection-manager:
 * topology (exchange, this node's exclusive auto-delete queue, every wanted
 * binding) is re-declared by `setup()` on every new pair of channels, and
 * nothing is published before setup completes. Topology operations run one at
 * a time on a promise chain, so a bind and an unbind of one key can never cross.
 *
 * A node publishes on a channel of its own, apart from the one that binds and
 * consumes: in RabbitMQ each channel is one process, and a channel that both
 * receives a node's publishes and delivers its consumer's messages makes each
 * wait behind the other (in an isolated hop, 1,000 publishes/s over two nodes,
 * the median hop was lower with separate channels in 6 of 7 interleaved runs).
 * Order is per publishing channel, so every message of a node still reaches
 * each queue in the order it was published. Losing either channel rebuilds both.
 *
 * Never closes a connection it did not create (the one passed in by the user).
 */
export class AmqpTransport {
  private readonly counters: TransportStats = emptyStats();

  private readonly nodeId = randomBytes(6).toString("hex");
  private readonly handlers = new Map<string, Set<Handler>>();
  /** Sender id of each local adapter -> its namespace (see addHandler). */
  private readonly senders = new Map<string, string>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly wanted = new Set<string>();
  private readonly bound = new Set<string>();
  private topology: Promise<void> = Promise.resolve();
  private connection: ChannelModel | undefined;
  private ownsConnection = false;
  private detachConnection: (() => void) | undefined;
  /** Topology and consumer; set only once setup completed. */
  private channel: Channel | undefined;
  /** Publishes; the same channel as `channel` for a publisher only (the emitter). */
  private publishChannel: Channel | undefined;
  private opening: Channel[] = [];
  private queue = "";
  private generation = 0;
  private everReady = false;
  private readonly outbox: Outbox;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    connection: ChannelModel,
    private readonly opts: ResolvedTransportOptions,
    /** false for publishers only (the emitter): no queue, no bindings. */
    private readonly consume: boolean,
  ) {
    this.outbox = new Outbox(opts, this.counters);
    this.adopt(connection, false);
    void this.reconnect();
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  count(name: "partialResults" | "missingResponses", by = 1): void {
    this.counters[name] += by;
  }

  /** A message that failed before reaching the channel: counted as dropped and logged. */
  dropped(reason: string, err: unknown, fields: object = {}): void {
    this.counters.dropped++;
    this.opts.logger.warn({ ...fields, reason, err }, "amqp publish failed, dropped");
  }

  /** Name of the current queue ("" while disconnected); for tests and operators. */
  get queueName(): string {
    return this.channel ? this.queue : "";
  }

  get connected(): boolean {
    return this.channel !== undefined;
  }

  /**
   * `handler` receives the messages of `nsp`. `sender` is the id its adapter
   * publishes under: the broker hands a node back its own room messages (it is
   * bound to their keys too), and those are dropped undecoded while that
   * adapter is its namespace's only handler here (the base class would ignore
   * them anyway).
   */
  addHandler(nsp: string, handler: Handler, sender?: string): () => void {
    const set = this.handlers.get(nsp) ?? new Set<Handler>();
    this.handlers.set(nsp, set);
    set.add(handler);
    if (sender !== undefined) this.senders.set(sender, nsp);
    return () => {
      set.delete(handler);
      if (set.size === 0) this.handlers.delete(nsp);
      if (sender !== undefined) this.senders.delete(sender);
    };
  }

  /** `listener` runs after each successful re-setup (not the first). Returns a remover. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Wants `key` bound; resolves once it is (or once known it cannot be now: setup will bind it). */
  bind(key: string): Promise<void> {
    this.wanted.add(key);
    return this.reconcile(key);
  }

  unbind(key: string): Promise<void> {
    this.wanted.delete(key);
    return this.reconcile(key);
  }

  /** Publishes one message. Never rejects: what cannot be published is counted as dropped. */
  publish(key: string, message: WireMessage): Promise<void> {
    if (this.closing && message.type !== MessageType.ADAPTER_CLOSE)
      return this.outbox.drop("closed");
    let frame: Buffer;
    try {
      frame = encodeMessage(message);
    } catch (err) {
      this.dropped("unencodable", err, { type: message.type });
      return Promise.resolve();
    }
    // The sender id travels as the AMQP app-id too, so that our own copy can be
    // recognized before decoding (nodes that do not look at it are unaffected).
    return this.outbox.send(key, frame, this.consume ? message.uid : undefined);
  }

  publishFrame(key: string, frame: Buffer): Promise<void> {
    return this.outbox.send(key, frame);
  }

  /** Idempotent; closes this transport's channel and any connection it opened itself. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    clearTimeout(this.reconnectTimer);
    // Let what waits for 'drain' (like ADAPTER_CLOSE) go out first.
    await this.outbox.settle();
    this.outbox.close();
    const channels = new Set([this.channel, this.publishChannel, ...this.opening]);
    this.channel = undefined;
    this.publishChannel = undefined;
    await Promise.all(
      [...channels].map((channel) =>
        channel ? withTimeout(channel.close(), CLOSE_TIMEOUT_MS).catch(() => undefined) : undefined,
      ),
    );
    this.detachConnection?.();
    if (this.ownsConnection && this.connection) {
      await withTimeout(this.connection.close(), CLOSE_TIMEOUT_MS).catch(() => undefined);
    }
    this.connection = undefined;
  }

  private reconcile(key: string): Promise<void> {
    return this.serially(async () => {
      const channel = this.channel;
      if (!channel || !this.consume) return;
      if (this.wanted.has(key) && !this.bound.has(key)) {
        await channel.bindQueue(this.queue, this.opts.exchange, key);
        this.bound.add(key);
      } else if (!this.wanted.has(key) && this.bound.has(key)) {
        await channel.unbindQueue(this.queue, this.opts.exchange, key);
        this.bound.delete(key);
      }
      this.counters.bindings = this.bound.size;
    }).catch((err: unknown) => {
      // The channel died mid-operation; the next setup binds whatever is wanted then.
      if (!this.closing) this.opts.logger.debug({ err, key }, "amqp binding change failed");
    });
  }

  private serially(op: () => Promise<void>): Promise<void> {
    const run = this.topology.then(op);
    this.topology = run.catch(() => undefined);
    return run;
  }

  private adopt(connection: ChannelModel, owned: boolean): void {
    this.detachConnection?.();
    this.connection = connection;
    this.ownsConnection = owned;
    const onError = (err: Error) => this.opts.logger.warn({ err }, "amqp connection error");
    const onClose = () => this.onConnectionClose(connection);
    connection.on("error", onError);
    connection.on("close", onClose);
    this.detachConnection = () => {
      connection.off("error", onError);
      connection.off("close", onClose);
      this.detachConnection = undefined;
    };
  }

  private onConnectionClose(connection: ChannelModel): void {
    if (connection !== this.connection) return;
    this.detachConnection?.();
    this.connection = undefined;
    this.onChannelLost(this.channel);
    if (this.closing) return;
    this.report("amqp connection lost");
    this.scheduleReconnect();
  }

  private onChannelLost(channel: Channel | undefined): void {
    if (!channel || (channel !== this.channel && channel !== this.publishChannel)) return;
    const other = channel === this.channel ? this.publishChannel : this.channel;
    this.channel = undefined;
    this.publishChannel = undefined;
    if (other && other !== channel) void other.close().catch(() => undefined);
    this.bound.clear();
    this.counters.bindings = 0;
    this.outbox.lost();
    if (this.closing) return;
    this.opts.logger.warn(
      { queue: this.queue },
      "amqp channel lost; publishes are dropped until recovered",
    );
    this.scheduleReconnect();
  }

  private report(message: string, cause?: unknown): void {
    const error = new SwitchboardError(ErrorCode.BROKER_CONNECTION, message, { cause });
    this.opts.logger.warn({ err: cause }, message);
    try {
      this.opts.onError?.(error);
    } catch (err) {
      this.opts.logger.error({ err }, "onError callback threw");
    }
  }

  private scheduleReconnect(): void {
    if (this.closing || this.reconnectTimer) return;
    const delay = backoffDelay(this.attempt++, {
      initialMs: this.opts.reconnectMinDelayMs,
      maxMs: this.opts.reconnectMaxDelayMs,
    });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, delay);
  }

  private async reconnect(): Promise<void> {
    if (this.closing) return;
    try {
      if (!this.connection) {
        if (!this.opts.connectionFactory) {
          this.report("amqp connection lost and no connectionFactory given; staying local-only");
          return;
        }
        const connection = await this.opts.connectionFactory();
        if (this.closing) {
          await connection.close().catch(() => undefined);
          return;
        }
        this.adopt(connection, true);
      }
      await this.serially(() => this.setup());
      const recovered = this.everReady;
      this.everReady = true;
      this.attempt = 0;
      if (recovered) {
        this.counters.reconnects++;
        for (const listener of this.reconnectListeners) listener();
      }
    } catch (err) {
      if (this.closing) return;
      // A connection that was closed before we listened (or whose 'close' we
      // missed) never recovers: forget it, so the factory is used next.
      if (
        err instanceof Error &&
        err.name === "IllegalOperationError" &&
        /^Connection closed/.test(err.message)
      ) {
        this.detachConnection?.();
        this.connection = undefined;
      }
      this.report("amqp setup failed; retrying", err);
      this.scheduleReconnect();
    }
  }

  /** Declares the whole topology on fresh channels; re-run after every loss. */
  private async setup(): Promise<void> {
    const connection = this.connection;
    if (!connection) throw new SwitchboardError(ErrorCode.BROKER_CONNECTION, "no connection");
    const open = async (): Promise<Channel> => {
      const channel = await connection.createChannel();
      this.opening.push(channel);
      channel.on("error", (err: Error) => this.opts.logger.warn({ err }, "amqp channel error"));
      channel.on("close", () => this.onChannelLost(channel));
      return channel;
    };
    let channels: { topology: Channel; publish: Channel };
    try {
      const channel = await open();
      await channel.assertExchange(this.opts.exchange, "topic", { durable: true });
      if (this.consume) {
        // A new name per setup: after a partition the broker may still hold
        // the old exclusive queue for the dead connection (RESOURCE_LOCKED).
        const queue = `${this.opts.exchange}.node.${this.nodeId}.${++this.generation}`;
        await channel.assertQueue(queue, { exclusive: true, autoDelete: true, durable: false });
        const keys = [...this.wanted];
        await Promise.all(keys.map((key) => channel.bindQueue(queue, this.opts.exchange, key)));
        await channel.consume(queue, (msg) => this.onDelivery(channel, msg), { noAck: true });
        this.queue = queue;
        this.bound.clear();
        for (const key of keys) this.bound.add(key);
        this.counters.bindings = this.bound.size;
        channels = { topology: channel, publish: await open() };
      } else {
        channels = { topology: channel, publish: channel };
      }
    } catch (err) {
      await Promise.all(this.opening.map((c) => c.close().catch(() => undefined)));
      throw err;
    } finally {
      this.opening = [];
    }
    if (this.closing) {
      await Promise.all(
        [...new Set([channels.topology, channels.publish])].map((c) =>
          c.close().catch(() => undefined),
        ),
      );
      return;
    }
    this.channel = channels.topology;
    this.publishChannel = channels.publish;
    this.outbox.open(channels.publish);
    this.opts.logger.info(
      { queue: this.queue, exchange: this.opts.exchange },
      "amqp transport ready",
    );
  }

  /** A message a local adapter published, back from the broker, that no other local adapter wants. */
  private isOwnEcho(sender: string): boolean {
    const nsp = this.senders.get(sender);
    return nsp !== undefined && this.handlers.get(nsp)?.size === 1;
  }

  private onDelivery(channel: Channel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled our consumer (queue deleted): recover via a new channel.
      this.opts.logger.warn({ queue: this.queue }, "amqp consumer cancelled by broker");
      void channel.close().catch(() => undefined);
      return;
    }
    this.counters.received++;
    const from: unknown = msg.properties.appId;
    if (typeof from === "string" && this.isOwnEcho(from)) return;
    let message: WireMessage;
    try {
      message = decodeMessage(msg.content);
    } catch (err) {
      this.counters.decodeErrors++;
      const code = err instanceof SwitchboardError ? err.code : ErrorCode.DECODE;
      this.opts.logger.warn(
        {
          code,
          err,
          routingKey: msg.fields.routingKey,
          bytes: msg.content.byteLength,
        },
        "amqp frame not decodable, dropped",
      );
      return;
    }
    if (message.type === MessageType.BROADCAST) this.counters.receivedBroadcasts++;
    for (const handler of this.handlers.get(message.nsp) ?? []) {
      try {
        handler(message);
      } catch (err) {
        this.counters.handlerErrors++;
        this.opts.logger.warn(
          { err, type: message.type, nsp: message.nsp },
          "amqp message handler threw, dropped",
        );
      }
    }
  }
}
