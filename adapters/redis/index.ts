import { createRequire } from "node:module";
import { setTimeout as delay } from "node:timers/promises";
import type { Namespace } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import { type Logger, silentLogger } from "../../core/logger.js";
import { positiveInt } from "../../core/validate.js";
import { createEchoFreeAdapter } from "./classic.js";
import {
  closeClient,
  createClient,
  type DroppedCommand,
  failFastWhenOffline,
  parseRedisUrl,
  type RedisClient,
  type RedisTarget,
  writePerTick,
} from "./connection.js";
import { joinAfterSubscribed } from "./sharded.js";

export type { DroppedCommand, RedisClient, RedisTarget } from "./connection.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const require = createRequire(import.meta.url);
const { createShardedAdapter } =
  require("@socket.io/redis-adapter") as typeof import("@socket.io/redis-adapter");
const { createAdapter: createStreamsAdapter } =
  require("@socket.io/redis-streams-adapter") as typeof import("@socket.io/redis-streams-adapter");
const { Redis } = require("ioredis") as typeof import("ioredis");

export type RedisBackplaneKind = "redis" | "redis-sharded" | "redis-streams";

export interface RedisBackplaneOptions extends RedisTarget {
  /** Time to wait for other nodes' answers (fetchSockets, serverSideEmitWithAck…), in ms. @default 5000 */
  requestsTimeoutMs?: number;
  /**
   * Heartbeat period of the streams adapter, in ms. Passed on for versions that use it: 0.3.x
   * counts nodes with PUBSUB NUMSUB and ignores it. @default 5000
   */
  heartbeatIntervalMs?: number;
  /** A node silent for this long is considered gone (streams adapter; see above), in ms. @default 10000 */
  heartbeatTimeoutMs?: number;
  /**
   * Called for each publish dropped because Redis was unreachable (at-most-once: nothing is
   * queued for later). @default ignore
   */
  onDropped?: (dropped: DroppedCommand) => void;
  /** Where connection errors go (one line when a connection starts failing, one when it is back). @default silent */
  logger?: Logger;
}

export interface RedisBackplane {
  /** The Socket.IO `adapter` option. */
  adapter: (nsp: Namespace) => Adapter;
  /** True while every connection to Redis is ready. */
  isConnected(): boolean;
  /** Counters since the start; `dropped`: publishes dropped while Redis was unreachable. */
  stats(): RedisBackplaneStats;
  /**
   * Resolves true once every connection is ready, false after `timeoutMs`. Create namespaces
   * after it: a subscription sent between "connect" and "ready" upsets ioredis' ready check, and
   * the reconnect that follows loses it.
   */
  whenReady(timeoutMs: number): Promise<boolean>;
  /** Idempotent; call after the Socket.IO server closed its adapters. */
  close(): Promise<void>;
}

// A type, not an interface: it must fit the seam's `Record<string, number>`.
export type RedisBackplaneStats = { dropped: number };

type AdapterFactory = (nsp: Namespace) => Adapter;

/**
 * The Redis backplanes, on the official adapters over ioredis:
 * - `redis`: `@socket.io/redis-adapter` (classic pub/sub), one publishing + one subscribing
 *   connection; its adapter drops the node's own broadcasts before decoding them (classic.ts);
 * - `redis-sharded`: its `createShardedAdapter` (Redis 7 SPUBLISH/SSUBSCRIBE), in
 *   `subscriptionMode: "dynamic"`, so a node subscribes to a room's channel only while it has a
 *   member of that room;
 * - `redis-streams`: `@socket.io/redis-streams-adapter` (XADD/XREAD, connection state recovery).
 *
 * They keep the official default key prefix ("socket.io") so that `@socket.io/redis-emitter`
 * works unchanged. With `cluster: true`, every connection is an ioredis `Cluster`.
 */
export function createRedisBackplane(
  kind: RedisBackplaneKind,
  options: RedisBackplaneOptions,
): RedisBackplane {
  parseRedisUrl(options.url);
  const requestsTimeout = positiveInt(options.requestsTimeoutMs, "requestsTimeoutMs", 5000);
  const heartbeatInterval = positiveInt(options.heartbeatIntervalMs, "heartbeatIntervalMs", 5000);
  const heartbeatTimeout = positiveInt(options.heartbeatTimeoutMs, "heartbeatTimeoutMs", 10_000);

  let dropped = 0;
  const onDropped = (info: DroppedCommand) => {
    dropped++;
    options.onDropped?.(info);
  };
  // The PUBLISHes of one tick go out in at most two socket writes, the first at once:
  // writePerTick on a standalone client;
  // a cluster client (one socket per node) auto-pipelines, not for streams, whose adapter
  // duplicates this client for its blocking XREAD.
  const pipelined =
    options.cluster && kind !== "redis-streams" ? { enableAutoPipelining: true } : {};
  const pub = createClient({ ...options, redis: { ...pipelined, ...options.redis } }, pipelined);
  if (pub instanceof Redis) writePerTick(pub);
  const clients: RedisClient[] = [pub];
  // Every connection to Redis counts for isConnected (/readyz) and has its errors logged, with
  // its role. A listener is required anyway: without one ioredis reports errors as unhandled.
  const logger = options.logger ?? silentLogger;
  const watched: RedisClient[] = [];
  const watch = (client: RedisClient, role: string) => {
    watched.push(client);
    logClientErrors(client, role, logger);
  };
  watch(pub, "publisher");
  let adapter: AdapterFactory;
  if (kind === "redis-streams") {
    // The adapter duplicates `pub` right away for its blocking XREAD and pub/sub connections:
    // those copies keep the offline queue, so no read or subscription is lost to an outage. The
    // adapter owns them (it disconnects them when its last namespace closes) and ignores their
    // errors; a gateway whose XREAD or subscriber connection is down receives nothing from the
    // other nodes, so they are watched like ours.
    // 0.3.x makes the XREAD connection first, then the subscriber.
    watchDuplicates(pub, (client, index) =>
      watch(
        client,
        index === 0
          ? "stream-reader"
          : index === 1
            ? "stream-subscriber"
            : `stream-connection-${index}`,
      ),
    );
    adapter = createStreamsAdapter(pub, {
      heartbeatInterval,
      heartbeatTimeout,
    }) as unknown as AdapterFactory;
  } else {
    // ioredis' cluster client serves SSUBSCRIBE only with one subscriber per master.
    const sub = createClient(options, { shardedSubscribers: kind === "redis-sharded" });
    clients.push(sub);
    watch(sub, "subscriber");
    adapter =
      kind === "redis"
        ? createEchoFreeAdapter(pub, sub, { requestsTimeout })
        : joinAfterSubscribed(
            createShardedAdapter(pub, sub, {
              subscriptionMode: "dynamic",
            }) as unknown as AdapterFactory,
            sub,
          );
  }
  failFastWhenOffline(pub, onDropped);

  const allReady = () => watched.every((client) => client.status === "ready");
  let closing: Promise<void> | undefined;
  return {
    adapter,
    isConnected: () => !closing && allReady(),
    stats: () => ({ dropped }),
    async whenReady(timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (!closing && !allReady()) {
        if (Date.now() > deadline) return false;
        await delay(20);
      }
      return !closing;
    },
    close() {
      closing ??= Promise.all(clients.map(closeClient)).then(() => undefined);
      return closing;
    },
  };
}

/**
 * Calls `onDuplicate` with every client `client.duplicate()` makes from now on (and its index):
 * the streams adapter makes its reading connections that way, out of our sight otherwise.
 */
function watchDuplicates(
  client: RedisClient,
  onDuplicate: (duplicate: RedisClient, index: number) => void,
): void {
  const duplicate = client.duplicate.bind(client) as (...args: unknown[]) => RedisClient;
  let made = 0;
  (client as { duplicate: (...args: unknown[]) => RedisClient }).duplicate = (...args) => {
    const copy = duplicate(...args);
    onDuplicate(copy, made++);
    return copy;
  };
}

/** The part of an ioredis client `logClientErrors` listens to. */
export interface ErrorSource {
  on(event: "error", listener: (err: Error) => void): unknown;
  on(event: "ready", listener: () => void): unknown;
}

/**
 * Logs a Redis connection's errors without flooding: ioredis emits one per reconnect attempt
 * during an outage, so only the first after the connection was fine is logged (warn), and one
 * line (info) when it is ready again.
 */
export function logClientErrors(client: ErrorSource, connection: string, logger: Logger): void {
  let failing = false;
  client.on("error", (err: Error) => {
    if (failing) return;
    failing = true;
    // Not the error object: ioredis attaches the failed command, whose arguments can be the
    // password (AUTH), and a logger would print every property.
    const code = (err as { code?: unknown }).code;
    logger.warn(
      { connection, reason: err.message, ...(typeof code === "string" ? { code } : {}) },
      "Redis connection error; retrying (not logged again until it recovers)",
    );
  });
  client.on("ready", () => {
    if (!failing) return;
    failing = false;
    logger.info({ connection }, "Redis connection ready again");
  });
}
