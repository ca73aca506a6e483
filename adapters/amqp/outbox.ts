import type { Channel } from "amqplib";
import type { AmqpLogger } from "./options.js";

interface Waiting {
  key: string;
  frame: Buffer;
  timer: NodeJS.Timeout;
  resolve: () => void;
}

export interface OutboxCounters {
  published: number;
  dropped: number;
}

/**
 * The publish side of the transport: writes to the current channel, honours
 * back-pressure (`publish()` returned false → wait for 'drain'), and keeps a
 * bounded, time-limited wait list for the first setup and for 'drain'.
 * After the first setup, an outage drops at once: Socket.IO broadcasts are
 * at-most-once, and local delivery must not wait for the broker.
 */
export class Outbox {
  private channel: Channel | undefined;
  private everOpen = false;
  private blocked = false;
  private waiting: Waiting[] = [];

  constructor(
    private readonly opts: {
      exchange: string;
      publishTimeoutMs: number;
      maxPendingPublishes: number;
      logger: AmqpLogger;
    },
    private readonly counters: OutboxCounters,
  ) {}

  /** A channel whose topology is set up: start (or resume) publishing on it. */
  open(channel: Channel): void {
    this.channel = channel;
    this.everOpen = true;
    this.blocked = false;
    channel.on("drain", () => {
      if (channel !== this.channel) return;
      this.blocked = false;
      this.flush();
    });
    this.flush();
  }

  /** The channel is gone: what waits for it is dropped (counted). */
  lost(): void {
    this.channel = undefined;
    this.blocked = false;
    this.dropWaiting();
  }

  /** Never rejects. */
  send(key: string, frame: Buffer): Promise<void> {
    const channel = this.channel;
    if (channel && !this.blocked && this.waiting.length === 0) {
      this.write(channel, key, frame);
      return Promise.resolve();
    }
    if (!channel && this.everOpen) return this.drop("disconnected");
    if (this.waiting.length >= this.opts.maxPendingPublishes) return this.drop("backpressure");
    return new Promise((resolve) => {
      const entry: Waiting = {
        key,
        frame,
        resolve,
        timer: setTimeout(() => {
          this.waiting = this.waiting.filter((w) => w !== entry);
          this.counters.dropped++;
          this.opts.logger.debug({ key }, "amqp publish timed out waiting for the broker, dropped");
          resolve();
        }, this.opts.publishTimeoutMs),
      };
      this.waiting.push(entry);
    });
  }

  drop(reason: string): Promise<void> {
    this.counters.dropped++;
    this.opts.logger.debug({ reason }, "amqp publish dropped");
    return Promise.resolve();
  }

  /** Resolves once everything waiting was written or dropped (each entry is time-bounded). */
  async settle(): Promise<void> {
    if (!this.channel) this.dropWaiting();
    await Promise.all(
      this.waiting.map(
        (entry) =>
          new Promise<void>((done) => {
            const resolve = entry.resolve;
            entry.resolve = () => {
              resolve();
              done();
            };
          }),
      ),
    );
  }

  close(): void {
    this.channel = undefined;
    this.dropWaiting();
  }

  private write(channel: Channel, key: string, frame: Buffer): void {
    try {
      // false: amqplib buffered the frame but asks us to pause until 'drain'.
      if (!channel.publish(this.opts.exchange, key, frame)) this.blocked = true;
      this.counters.published++;
    } catch (err) {
      this.counters.dropped++;
      this.opts.logger.warn({ err, key }, "amqp publish failed, dropped");
    }
  }

  private flush(): void {
    while (this.channel && !this.blocked && this.waiting.length > 0) {
      const entry = this.waiting.shift() as Waiting;
      clearTimeout(entry.timer);
      this.write(this.channel, entry.key, entry.frame);
      entry.resolve();
    }
  }

  private dropWaiting(): void {
    for (const entry of this.waiting) {
      clearTimeout(entry.timer);
      this.counters.dropped++;
      entry.resolve();
    }
    this.waiting = [];
  }
}
