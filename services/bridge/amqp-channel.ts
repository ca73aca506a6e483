import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { backoff, pause } from "../../core/retry.js";
import type { ChannelOptions, PythonChannel } from "./channel.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const amqp = createRequire(import.meta.url)("amqplib") as typeof import("amqplib");

/**
 * kombu's topology, which python-socketio's KombuManager declares: a fanout exchange named after
 * the channel, `durable=False`, `auto_delete=False`, and one queue per listener bound with
 * routing key "". The exchange must be declared with exactly these flags: RabbitMQ answers any
 * difference with 406 PRECONDITION_FAILED, which would break the Python side as much as ours.
 * Our queue follows kombu's naming and its `x-expires` (300000 ms); it is also exclusive, so it
 * goes away with this gateway's connection instead of lingering for those five minutes.
 */
export const EXCHANGE_OPTIONS = { durable: false, autoDelete: false } as const;
export const QUEUE_EXPIRES_MS = 300_000;
/** Messages held unacknowledged at once: bounds what a slow gateway buffers. */
const PREFETCH = 500;
/** Acknowledge every this many messages (and when the consumer goes idle). */
const ACK_EVERY = 50;

export function openAmqpChannel(options: ChannelOptions): PythonChannel {
  const stop = new AbortController();
  const retry = backoff({ initialMs: 200, maxMs: 5000 });
  let connection: ChannelModel | undefined;
  let channel: Channel | undefined;
  let subscribed = false;

  const connectOnce = async () => {
    const conn = await amqp.connect(options.url);
    connection = conn;
    const closed = new Promise<void>((resolve) => {
      conn.on("close", () => resolve());
      conn.on("error", (err: Error) =>
        options.logger.warn({ err }, "bridge: amqp connection error"),
      );
    });
    const ch = await conn.createChannel();
    ch.on("error", (err: Error) => options.logger.warn({ err }, "bridge: amqp channel error"));
    // A channel that closes alone (a broker-side error) takes the connection down with it, so
    // that the loop below reconnects and declares everything again.
    ch.on("close", () => void conn.close().catch(() => undefined));
    await ch.assertExchange(options.channel, "fanout", EXCHANGE_OPTIONS);
    const queue = `${options.channel}.${randomUUID()}`;
    await ch.assertQueue(queue, {
      durable: false,
      exclusive: true,
      arguments: { "x-expires": QUEUE_EXPIRES_MS },
    });
    await ch.bindQueue(queue, options.channel, "");
    await ch.prefetch(PREFETCH);
    let unacked = 0;
    let last: ConsumeMessage | undefined;
    let flushScheduled = false;
    const flush = () => {
      flushScheduled = false;
      try {
        if (last && unacked > 0) ch.ack(last, true);
      } catch {
        // The channel is gone: its exclusive queue and what it held go with it.
      }
      unacked = 0;
    };
    await ch.consume(queue, (msg) => {
      if (msg === null) {
        // Cancelled by the broker (the queue was deleted): reconnect and declare it again.
        void conn.close().catch(() => undefined);
        return;
      }
      options.onMessage(msg.content);
      last = msg;
      if (++unacked >= ACK_EVERY) flush();
      else if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flush);
      }
    });
    channel = ch;
    subscribed = true;
    retry.reset();
    options.logger.info({ exchange: options.channel, queue }, "bridge: listening on RabbitMQ");
    options.onConnected?.();
    await closed;
  };

  const run = async () => {
    while (!stop.signal.aborted) {
      try {
        await connectOnce();
      } catch (err) {
        if (!stop.signal.aborted)
          options.logger.warn({ err }, "bridge: RabbitMQ connection failed");
        await connection?.close().catch(() => undefined);
      }
      subscribed = false;
      channel = undefined;
      connection = undefined;
      if (stop.signal.aborted) break;
      const delay = retry.next();
      options.logger.info({ delayMs: delay }, "bridge: reconnecting to RabbitMQ");
      await pause(delay, stop.signal);
    }
  };
  const running = run();

  let closing: Promise<void> | undefined;
  return {
    isConnected: () => subscribed,
    publish(body) {
      if (!channel) return false;
      try {
        channel.publish(options.channel, "", Buffer.from(body), {
          // What kombu writes for a str body (python-socketio >= 5.14), so every version reads it.
          contentType: "text/plain",
          contentEncoding: "utf-8",
        });
        return true;
      } catch {
        return false;
      }
    },
    close() {
      closing ??= (async () => {
        stop.abort();
        await connection?.close().catch(() => undefined);
        await running;
      })();
      return closing;
    },
  };
}
