import { EventEmitter } from "node:events";
import type { ConsumeMessage, MessagePropertyHeaders, Options, Replies } from "amqplib";
import type { AmqpConnect } from "../../../services/ingest/amqp-session.js";

/** A message as the fake broker stores it. */
export interface StoredMessage {
  content: Buffer;
  headers: MessagePropertyHeaders;
  messageId: string | undefined;
  /** Earlier deliveries (the quorum queue's `x-delivery-count`). */
  deliveries: number;
}

/**
 * An in-memory RabbitMQ with what the ingest relies on: queues, one consumer per channel with a
 * prefetch window, deliveries in order, `ack` (also `multiple`), `nack` with requeue at the
 * head, confirmed `sendToQueue`, a delivery count, and connection loss that requeues every
 * unacknowledged delivery in order. Connections fail while `down` is true.
 */
export class FakeAmqpBroker {
  readonly queues = new Map<string, StoredMessage[]>();
  readonly connections: FakeConnection[] = [];
  /** Acknowledgement calls, in order, as `[first content acknowledged..last]` batches. */
  readonly ackCalls: Array<{ contents: string[]; allUpTo: boolean }> = [];
  /** Protocol errors a real broker would close the channel for (an unknown delivery tag). */
  readonly protocolErrors: string[] = [];
  down = false;
  /** Confirms of `sendToQueue` fail while true (the broker refuses a dead letter). */
  refusePublishes = false;
  connectAttempts = 0;

  readonly connect: AmqpConnect = async () => {
    this.connectAttempts += 1;
    if (this.down) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    const connection = new FakeConnection(this);
    this.connections.push(connection);
    return connection;
  };

  queue(name: string): StoredMessage[] {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = [];
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** A publisher puts `body` on `queue`. */
  enqueue(queue: string, body: string | object, messageId?: string): void {
    const content = Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    this.queue(queue).push({ content, headers: {}, messageId, deliveries: 0 });
    this.dispatchAll();
  }

  /** Contents of `queue`, as strings. */
  contents(queue: string): string[] {
    return this.queue(queue).map((m) => m.content.toString());
  }

  /** The broker drops every connection (a restart, a network cut). */
  dropConnections(): void {
    for (const connection of this.connections) connection.lose(new Error("connection reset"));
  }

  openConnections(): FakeConnection[] {
    return this.connections.filter((c) => !c.isClosed);
  }

  /** Channels with a consumer on `queue`, open. */
  consumers(queue: string): FakeChannel[] {
    return this.openConnections().flatMap((c) =>
      c.channels.filter((ch) => !ch.isClosed && ch.consumerQueue === queue),
    );
  }

  dispatchAll(): void {
    for (const connection of this.openConnections()) {
      for (const channel of connection.channels) channel.scheduleDispatch();
    }
  }
}

export class FakeConnection extends EventEmitter {
  readonly channels: FakeChannel[] = [];
  isClosed = false;

  constructor(readonly broker: FakeAmqpBroker) {
    super();
  }

  async createChannel(): Promise<FakeChannel> {
    return this.#open();
  }

  async createConfirmChannel(): Promise<FakeChannel> {
    return this.#open();
  }

  async close(): Promise<void> {
    this.lose(undefined);
  }

  /** Closes the connection and its channels; `err` set when the broker dropped it. */
  lose(err: Error | undefined): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const channel of this.channels) channel.lose();
    if (err) this.emit("error", err);
    this.emit("close", err);
  }

  #open(): FakeChannel {
    if (this.isClosed) throw new Error("connection closed");
    const channel = new FakeChannel(this.broker, this);
    this.channels.push(channel);
    return channel;
  }
}

interface Unacked {
  tag: number;
  queue: string;
  stored: StoredMessage;
}

export class FakeChannel extends EventEmitter {
  isClosed = false;
  consumerQueue: string | undefined;
  readonly #unacked: Unacked[] = [];
  #prefetch = 0;
  #nextTag = 1;
  #onMessage: ((msg: ConsumeMessage | null) => void) | undefined;
  #consumerTag = "";
  #scheduled = false;

  constructor(
    readonly broker: FakeAmqpBroker,
    readonly connection: FakeConnection,
  ) {
    super();
  }

  get unackedCount(): number {
    return this.#unacked.length;
  }

  async assertQueue(queue = "", _options?: Options.AssertQueue): Promise<Replies.AssertQueue> {
    this.#open();
    this.broker.queue(queue);
    return { queue, messageCount: this.broker.queue(queue).length, consumerCount: 0 };
  }

  async checkQueue(queue: string): Promise<Replies.AssertQueue> {
    return this.assertQueue(queue);
  }

  async prefetch(count: number): Promise<Replies.Empty> {
    this.#prefetch = count;
    return {};
  }

  async consume(
    queue: string,
    onMessage: (msg: ConsumeMessage | null) => void,
    options?: Options.Consume,
  ): Promise<Replies.Consume> {
    this.#open();
    this.consumerQueue = queue;
    this.#onMessage = onMessage;
    this.#consumerTag = options?.consumerTag ?? "fake";
    this.scheduleDispatch();
    return { consumerTag: this.#consumerTag };
  }

  /** The broker cancels the consumer (its queue was deleted). */
  cancel(): void {
    this.#requeueAll();
    this.consumerQueue = undefined;
    this.#onMessage?.(null);
  }

  ack(message: { fields: { deliveryTag: number } }, allUpTo = false): void {
    this.#open();
    const tag = message.fields.deliveryTag;
    const taken = this.#take(tag, allUpTo);
    if (taken.length === 0)
      return this.#protocolError(`PRECONDITION_FAILED - unknown delivery tag ${tag}`);
    this.broker.ackCalls.push({ contents: taken.map((u) => u.stored.content.toString()), allUpTo });
    this.scheduleDispatch();
  }

  nack(message: { fields: { deliveryTag: number } }, allUpTo = false, requeue = true): void {
    this.#open();
    const taken = this.#take(message.fields.deliveryTag, allUpTo);
    if (taken.length === 0)
      return this.#protocolError("PRECONDITION_FAILED - unknown delivery tag");
    if (requeue) this.#requeue(taken);
    this.scheduleDispatch();
  }

  sendToQueue(
    queue: string,
    content: Buffer,
    options?: Options.Publish,
    callback?: (err: unknown, ok: Replies.Empty) => void,
  ): boolean {
    this.#open();
    const refused = this.broker.refusePublishes;
    if (!refused) {
      this.broker.queue(queue).push({
        content,
        headers: options?.headers ?? {},
        messageId: options?.messageId,
        deliveries: 0,
      });
    }
    setImmediate(() => callback?.(refused ? new Error("message nacked") : null, {}));
    return true;
  }

  async close(): Promise<void> {
    this.lose();
  }

  lose(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.#requeueAll();
    this.emit("close");
    this.broker.dispatchAll();
  }

  scheduleDispatch(): void {
    if (this.#scheduled || this.isClosed) return;
    this.#scheduled = true;
    // Deliveries arrive in bursts, as they do from one socket read.
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    const queueName = this.consumerQueue;
    if (this.isClosed || queueName === undefined || this.#onMessage === undefined) return;
    // Single active consumer: only the first open consumer of a queue gets its messages.
    if (this.broker.consumers(queueName)[0] !== this) return;
    const queue = this.broker.queue(queueName);
    while (queue.length > 0 && (this.#prefetch === 0 || this.#unacked.length < this.#prefetch)) {
      const stored = queue.shift()!;
      const tag = this.#nextTag++;
      this.#unacked.push({ tag, queue: queueName, stored });
      const headers: MessagePropertyHeaders = { ...stored.headers };
      if (stored.deliveries > 0) headers["x-delivery-count"] = stored.deliveries;
      this.#onMessage({
        content: stored.content,
        fields: {
          deliveryTag: tag,
          redelivered: stored.deliveries > 0,
          exchange: "",
          routingKey: queueName,
          consumerTag: this.#consumerTag,
        },
        properties: {
          contentType: undefined,
          contentEncoding: undefined,
          headers,
          deliveryMode: undefined,
          priority: undefined,
          correlationId: undefined,
          replyTo: undefined,
          expiration: undefined,
          messageId: stored.messageId,
          timestamp: undefined,
          type: undefined,
          userId: undefined,
          appId: undefined,
          clusterId: undefined,
        },
      });
      if (this.isClosed) return;
    }
  }

  #take(tag: number, allUpTo: boolean): Unacked[] {
    const taken = this.#unacked.filter((u) => (allUpTo ? u.tag <= tag : u.tag === tag));
    for (const u of taken) this.#unacked.splice(this.#unacked.indexOf(u), 1);
    return taken;
  }

  #requeueAll(): void {
    this.#requeue(this.#unacked.splice(0));
  }

  /** Back at the head of their queue, in delivery order, counted as delivered once more. */
  #requeue(taken: Unacked[]): void {
    for (const u of [...taken].reverse()) {
      u.stored.deliveries += 1;
      this.broker.queue(u.queue).unshift(u.stored);
    }
    this.broker.dispatchAll();
  }

  #open(): void {
    if (this.isClosed) throw new Error("Channel closed");
  }

  /** As RabbitMQ does: the channel is closed with an error. */
  #protocolError(message: string): void {
    this.broker.protocolErrors.push(message);
    this.emit("error", new Error(message));
    this.lose();
  }
}
