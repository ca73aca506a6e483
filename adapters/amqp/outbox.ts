import { Writable } from "node:stream";
import type { Channel } from "amqplib";
import type { AmqpLogger } from "./options.js";
import { publishFrameWriter } from "./publish-frames.js";

interface Waiting {
  key: string;
  frame: Buffer;
  appId: string | undefined;
  timer: NodeJS.Timeout;
  resolve: () => void;
}

/**
 * amqplib 2.x writes a channel's frames to the socket from a `setImmediate`
 * (lib/mux.js). A broadcast published from an I/O callback then leaves only
 * after the rest of that loop turn's work: the gateway's ack to the publishing
 * client, the base class's local delivery of the same broadcast (it runs once
 * `doPublish` resolves), other clients' events. All of it added to the hop
 * through RabbitMQ. This returns a function that writes what the channel has
 * queued at once, socket corked (one system call): it does what amqplib's own
 * 'readable' handler and `setImmediate` would, a turn earlier. It reaches into
 * amqplib's internals (`connection.channels[ch].buffer`, the channel's queue;
 * `connection.muxer`, its `newStreams` and `_readIncoming`, which amqplib's
 * 'drain' handler calls too; `muxer.out`, the socket); where they are not
 * found, frames leave on amqplib's own schedule as before. Back-pressure is
 * unchanged: the mux writes nothing while its socket asks to wait for 'drain'.
 */
export function muxFlusher(channel: Channel): (() => void) | undefined {
  const connection = (channel as { connection?: { muxer?: Muxer; channels?: unknown } }).connection;
  const muxer = connection?.muxer;
  const read = muxer?._readIncoming;
  const ch = (channel as { ch?: unknown }).ch;
  const entries = connection?.channels;
  const queue =
    typeof ch === "number" && Array.isArray(entries)
      ? (entries[ch] as { buffer?: unknown } | null | undefined)?.buffer
      : undefined;
  if (!muxer || typeof read !== "function" || !Array.isArray(muxer.newStreams) || !queue)
    return undefined;
  const out = muxer.out instanceof Writable ? muxer.out : undefined;
  return () => {
    // amqplib lists the channel's queue with the mux on its 'readable' event, a tick later;
    // the mux reads each listed queue until empty and drops it from the list.
    const listed = muxer.newStreams as unknown[];
    if (!listed.includes(queue)) listed.push(queue);
    out?.cork();
    try {
      read.call(muxer);
    } finally {
      out?.uncork();
    }
  };
}

interface Muxer {
  _readIncoming?: unknown;
  newStreams?: unknown;
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
  /** Builds a publish's frames without amqplib's per-message steps (see publish-frames.ts). */
  private writeFrames: ReturnType<typeof publishFrameWriter>;

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
    this.writeFrames = publishFrameWriter(channel, this.opts.exchange);
    this.everOpen = true;
    this.blocked = false;
    // amqplib emits 'drain' from inside its writer (the mux reads the channel's queue, the
    // queue's writable side drains); writing the backlog there would enter the mux again
    // (writeNow), which it does not expect: it can throw an AssertionError from the socket's
    // 'drain' handler. So the backlog is written on the next tick, still blocked until then,
    // so that nothing sent meanwhile overtakes it.
    channel.on("drain", () => {
      process.nextTick(() => {
        if (channel !== this.channel) return;
        this.blocked = false;
        this.flush();
      });
    });
    this.flush();
  }

  /** The channel is gone: what waits for it is dropped (counted). */
  lost(): void {
    this.channel = undefined;
    this.flushMux = undefined;
    this.writeFrames = undefined;
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
    this.writeFrames = undefined;
    this.dropWaiting();
  }

  private write(channel: Channel, key: string, frame: Buffer, appId: string | undefined): void {
    try {
      // false: amqplib buffered the frame but asks us to pause until 'drain'.
      const written = this.writeFrames?.(key, frame, appId);
      if (written === undefined) {
        const options = appId === undefined ? undefined : { appId };
        if (!channel.publish(this.opts.exchange, key, frame, options)) this.blocked = true;
      } else if (written === "full") this.blocked = true;
      this.counters.published++;
      // Frames written to the socket already need no early flush of the channel's queue.
      if (this.flushMux && written !== "sent") this.writeNow();
    } catch (err) {
      this.counters.dropped++;
      this.opts.logger.warn({ err, key }, "amqp publish failed, dropped");
    }
  }

  /** Writes what the channel queued to the socket now (see muxFlusher). */
  private writeNow(): void {
    try {
      this.flushMux?.();
    } catch (err) {
      // Never from a message path: leave this channel's frames to amqplib's own schedule.
      this.flushMux = undefined;
      this.opts.logger.warn({ err }, "amqp early write failed; frames leave on amqplib's schedule");
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
