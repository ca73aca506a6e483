import { createRequire } from "node:module";
import { backoffDelay } from "../../core/retry.js";
import type { ChannelOptions, PythonChannel } from "./channel.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Redis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");

/**
 * python-socketio's RedisManager: plain PUBLISH/SUBSCRIBE on the channel name, no key prefix.
 * One connection subscribes (ioredis resubscribes after a reconnect), another publishes.
 * Publishes do not queue while Redis is away: a broadcast is at-most-once, as in Socket.IO.
 */
export function openRedisChannel(options: ChannelOptions): PythonChannel {
  const common = {
    retryStrategy: (attempt: number) => backoffDelay(attempt, { initialMs: 100, maxMs: 2000 }),
    maxRetriesPerRequest: null,
  };
  const subscriber = new Redis(options.url, common);
  const publisher = new Redis(options.url, {
    ...common,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
  });
  let subscribed = false;

  for (const client of [subscriber, publisher]) {
    client.on("error", (err: Error) => options.logger.warn({ err }, "bridge: redis error"));
  }
  subscriber.on("close", () => {
    subscribed = false;
  });
  subscriber.on("messageBuffer", (channel: Buffer, message: Buffer) => {
    if (channel.toString() === options.channel) options.onMessage(message);
  });
  const subscribe = () => {
    subscriber.subscribe(options.channel).then(
      () => {
        subscribed = true;
        options.logger.info({ channel: options.channel }, "bridge: listening on Redis");
        options.onConnected?.();
      },
      (err: unknown) => options.logger.warn({ err }, "bridge: redis subscribe failed"),
    );
  };
  // ioredis resubscribes on reconnect by itself; "ready" tells when that has been sent.
  subscriber.on("ready", () => {
    if (!subscribed) subscribe();
  });

  let closing: Promise<void> | undefined;
  return {
    isConnected: () => subscribed,
    publish(body) {
      if (publisher.status !== "ready") return false;
      publisher.publish(options.channel, body).catch((err: unknown) => {
        options.logger.warn({ err }, "bridge: redis publish failed");
      });
      return true;
    },
    close() {
      closing ??= (async () => {
        subscribed = false;
        subscriber.disconnect();
        publisher.disconnect();
      })();
      return closing;
    },
  };
}
