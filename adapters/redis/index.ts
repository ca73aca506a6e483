import { createAdapter, createShardedAdapter } from "@socket.io/redis-adapter";
import { createAdapter as createStreamsAdapter } from "@socket.io/redis-streams-adapter";
import { Redis, type RedisOptions } from "ioredis";
import type { Namespace } from "socket.io";
import type { Adapter } from "socket.io-adapter";

export type RedisBackplaneKind = "redis" | "redis-sharded" | "redis-streams";

export interface RedisBackplaneOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Time to wait for other nodes' answers (fetchSockets, serverSideEmitWithAck…), in ms. @default 5000 */
  requestsTimeoutMs?: number;
  /** Heartbeat period of the streams adapter, in ms. @default 5000 */
  heartbeatIntervalMs?: number;
  /** A node silent for this long is considered gone (streams adapter), in ms. @default 10000 */
  heartbeatTimeoutMs?: number;
  /** Extra ioredis options (tests use them to shorten reconnect delays). */
  redis?: RedisOptions;
}

export interface RedisBackplane {
  adapter: (nsp: Namespace) => Adapter;
  isConnected(): boolean;
  close(): Promise<void>;
}

/**
 * The Redis backplanes, built on the official adapters over ioredis. They keep the official
 * default key prefix ("socket.io") so that @socket.io/redis-emitter works unchanged.
 */
export function createRedisBackplane(
  kind: RedisBackplaneKind,
  options: RedisBackplaneOptions,
): RedisBackplane {
  const redisOptions: RedisOptions = {
    // Reconnect forever with a capped delay; commands issued meanwhile fail fast instead of
    // piling up in an unbounded offline queue (Socket.IO broadcasts are at-most-once anyway).
    retryStrategy: (attempt) => Math.min(100 * 2 ** Math.min(attempt, 10), 5000),
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    ...options.redis,
  };
  const pub = new Redis(options.url, redisOptions);
  const clients: Redis[] = [pub];
  // Errors are reported by status; without a listener ioredis would print unhandled 'error's.
  pub.on("error", () => {});
  const requestsTimeout = options.requestsTimeoutMs ?? 5000;
  let adapter: (nsp: Namespace) => Adapter;
  if (kind === "redis-streams") {
    adapter = createStreamsAdapter(pub, {
      heartbeatInterval: options.heartbeatIntervalMs ?? 5000,
      heartbeatTimeout: options.heartbeatTimeoutMs ?? 10_000,
    }) as unknown as (nsp: Namespace) => Adapter;
  } else {
    const sub = pub.duplicate();
    sub.on("error", () => {});
    clients.push(sub);
    adapter = (kind === "redis"
      ? createAdapter(pub, sub, { requestsTimeout })
      : createShardedAdapter(pub, sub, { subscriptionMode: "dynamic" })) as unknown as (
      nsp: Namespace,
    ) => Adapter;
  }
  let closed = false;
  return {
    adapter,
    isConnected: () => !closed && clients.every((client) => client.status === "ready"),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(clients.map((client) => client.quit()));
      for (const client of clients) client.disconnect();
    },
  };
}
