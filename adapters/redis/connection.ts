import { createRequire } from "node:module";
import type { Cluster, ClusterOptions, Redis, RedisOptions } from "ioredis";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { backoffDelay, withTimeout } from "../../core/retry.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Cluster: ClusterClient, Redis: RedisStandalone } = createRequire(import.meta.url)(
  "ioredis",
) as typeof import("ioredis");

/** A standalone client or a cluster client: the official adapters accept both. */
export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  /** `redis://` or `rediss://` URL; with `cluster`, any one node of the cluster. */
  url: string;
  /** The URL names a node of a Redis Cluster: connect with ioredis `Cluster`. @default false */
  cluster?: boolean;
  /** Extra ioredis options, merged over ours (tests shorten reconnect delays with them). */
  redis?: RedisOptions;
}

/** What a publishing client did with a command it could not hand to Redis. */
export interface DroppedCommand {
  command: string;
  error: Error;
}

/** Reconnect forever, backing off from 100 ms to at most 2 s, so that recovery is quick. */
const retryStrategy = (attempt: number) => backoffDelay(attempt, { initialMs: 100, maxMs: 2000 });

/**
 * Options of every client. `maxRetriesPerRequest: null`: a command waits for the connection
 * instead of failing after N reconnect attempts. That is what subscriptions need (an SSUBSCRIBE
 * queued during an outage is sent after it, where a failed one would be lost for good and
 * surface as an unhandled rejection inside the official adapters); publishers are made to fail
 * fast separately, see `failFastWhenOffline`.
 */
function baseOptions(target: RedisTarget): RedisOptions {
  return {
    retryStrategy,
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
    ...target.redis,
  };
}

export function parseRedisUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new SwitchboardError(ErrorCode.INVALID_ARGUMENT, `url: not a URL (${url})`, { cause });
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new SwitchboardError(
      ErrorCode.INVALID_ARGUMENT,
      `url: must start with redis:// or rediss:// (got ${parsed.protocol}//)`,
    );
  }
  return parsed;
}

/** A new client for `target`; `extra` applies to a cluster client as a whole (e.g. shardedSubscribers). */
export function createClient(
  target: RedisTarget,
  extra: Partial<ClusterOptions> = {},
): RedisClient {
  const url = parseRedisUrl(target.url);
  if (!target.cluster) return new RedisStandalone(target.url, baseOptions(target));
  const redisOptions: RedisOptions = {
    ...baseOptions(target),
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    tls: url.protocol === "rediss:" ? {} : undefined,
  };
  return new ClusterClient([{ host: url.hostname, port: Number(url.port || 6379) }], {
    redisOptions,
    clusterRetryStrategy: retryStrategy,
    enableOfflineQueue: true,
    ...extra,
  });
}

/**
 * Writes what a standalone client sends in one tick in at most two socket writes: the first
 * command of a tick is written at once, and the socket is then corked until `process.nextTick`,
 * so the rest of the tick's commands leave together before the event loop goes on. This is what
 * ioredis' `enableAutoPipelining` is used for elsewhere (a burst of PUBLISHes, say a batch of
 * queued publish commands, costs two syscalls instead of one each), without its costs:
 * auto-pipelining builds a Pipeline per batch (about 137,000 instructions per PUBLISH when each
 * publish is alone in its turn, as at a steady moderate rate) and sends it from `setImmediate`,
 * after the loop's I/O phase, which delays every publish by a loop turn.
 *
 * The first command goes out before the caller's next statement because a broadcast publishes,
 * then delivers to the node's own clients (the official adapter's order): written at once, the
 * message travels through Redis to the other nodes while this node writes to its clients, as
 * with a plain client. Corked from the start, it would wait for those writes. Order is the
 * socket's own either way.
 *
 * Only while the client is ready (its handshake commands go as ioredis sends them) and only for
 * commands on its own socket.
 */
export function writePerTick(client: Redis): void {
  const send = client.sendCommand;
  let corked: { uncork(): void } | undefined;
  const uncork = () => {
    const stream = corked;
    corked = undefined;
    stream?.uncork();
  };
  client.sendCommand = function (this: Redis, command, stream) {
    if (corked !== undefined || stream !== undefined || this.status !== "ready") {
      return send.call(this, command, stream);
    }
    const result = send.call(this, command, stream);
    const own = this.stream;
    own.cork();
    corked = own;
    process.nextTick(uncork);
    return result;
  };
}

/**
 * Broadcasts are at-most-once (Socket.IO's promise), so a publishing client must not queue them
 * while Redis is away: they would pile up without bound in ioredis' offline queue, be flushed as
 * a stale burst on reconnect, and — in the official adapters, which await the publish before the
 * local delivery — hold local traffic back until Redis answered. So, once the client was ready
 * the first time (nothing is published before that: the gateway is not ready), a command issued
 * while disconnected fails at once, and each failed publish is reported to `onDropped`. The
 * commands the adapters fire without awaiting (PUBLISH, SPUBLISH, and SET of the streams
 * adapter's session store) then resolve with null instead of becoming unhandled rejections;
 * XADD still rejects, as the adapters await it and catch.
 */
export function failFastWhenOffline(
  client: RedisClient,
  onDropped: (dropped: DroppedCommand) => void,
): void {
  client.once("ready", () => {
    client.options.enableOfflineQueue = false;
  });
  const target = client as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
  for (const command of ["publish", "spublish", "set", "xadd"]) {
    const send = target[command];
    if (!send) continue;
    const awaitedByCaller = command === "xadd";
    // One handler per command, not a closure per call (a publish per client publish).
    const dropped = (error: Error) => {
      onDropped({ command, error });
      if (awaitedByCaller) throw error;
      return null;
    };
    target[command] = (...args: unknown[]) => send.apply(client, args).catch(dropped);
  }
}

/** `quit` (flushes what was sent), then `disconnect`; never rejects. */
export async function closeClient(client: RedisClient): Promise<void> {
  if (client.status !== "end") {
    await withTimeout(
      client.quit().catch(() => undefined),
      1000,
    );
  }
  client.disconnect();
}
