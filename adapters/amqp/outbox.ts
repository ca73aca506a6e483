import { Writable } from "node:stream";
import type { Channel } from "amqplib";
import type { AmqpLogger } from "./options.js";

interface Waiting {
  key: string;
  frame: Buffer;
  appId: string | undefined;
  timer: NodeJS.Timeout;
  resolve: () => void;
}

/**
 * amqplib 2.x writes a channel's frames to the socket from a `setImmediate`
 * (lib/mux.js), one `write` per frame. A broadcast published from an I/O
 * callback then leaves only after the rest of that loop turn's work, its own
 * local delivery included (socket.io-adapter delivers locally once `doPublish`
 * resolves), so the hop through RabbitMQ starts late by the cost of that
 * work. Pulling amqplib's mux on the next tick, with the socket corked, writes
 * what this tick published first, in one system call. This reaches into
 * amqplib's internals (`connection.muxer`, its `_readIncoming`, which its own
 * 'drain' handler calls, and its `out` stream); where they are not found,
 * frames leave on amqplib's own schedule as before.
 */
export function muxFlusher(channel: Channel): (() => void) | undefined {
  const muxer = (channel as { connection?: { muxer?: Muxer } }).connection?.muxer;
  const read = muxer?._readIncoming;
  if (typeof read !== "function") return undefined;
  const out = muxer?.out;
  if (!(out instanceof Writable)) return () => read.call(muxer);
  return () => {
    out.cork();
    try {
      read.call(muxer);
    } finally {
      out.uncork();
    }
  };
}

interface Muxer {
  _readIncoming?: unknown;
  out?: unknown;
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
  private flushMux: (() => void) | undefined;
  private muxFlushScheduled = false;
  private readonly onTick = () => {
    this.muxFlushScheduled = false;
    try {
      this.flushMux?.();
    } catch (err) {
      // Never from a message path: leave this channel's frames to amqplib's own schedule.
      this.flushMux = undefined;
      this.opts.logger.warn({ err }, "amqp early write failed; frames leave on amqplib's schedule");
    }
  };

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
    this.flushMux = muxFlusher(channel);
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
    this.flushMux = undefined;
    this.blocked = false;
    this.dropWaiting();
  }

  /** Never rejects. */
  send(key: string, frame: Buffer, appId?: string): Promise<void> {
    const channel = this.channel;
    if (channel && !this.blocked && this.waiting.length === 0) {
      this.write(channel, key, frame, appId);
      return Promise.resolve();
    }
    if (!channel && this.everOpen) return this.drop("disconnected");
    if (this.waiting.length >= this.opts.maxPendingPublishes) return this.drop("backpressure");
    return new Promise((resolve) => {
      const entry: Waiting = {
        key,
        frame,
        appId,
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
    this.flushMux = undefined;
    this.dropWaiting();
  }

  private write(channel: Channel, key: string, frame: Buffer, appId: string | undefined): void {
    try {
      // false: amqplib buffered the frame but asks us to pause until 'drain'.
      const options = appId === undefined ? undefined : { appId };
      if (!channel.publish(this.opts.exchange, key, frame, options)) this.blocked = true;
      this.counters.published++;
      // One tick for all the frames published in this one: they leave in one go.
      if (this.flushMux && !this.muxFlushScheduled) {
        this.muxFlushScheduled = true;
        process.nextTick(this.onTick);
      }
    } catch (err) {
      this.counters.dropped++;
      this.opts.logger.warn({ err, key }, "amqp publish failed, dropped");
    }
  }

  private flush(): void {
    while (this.channel && !this.blocked && this.waiting.length > 0) {
      const entry = this.waiting.shift() as Waiting;
      clearTimeout(entry.timer);
      this.write(this.channel, entry.key, entry.frame, entry.appId);
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
