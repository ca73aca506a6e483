import { hostname } from "node:os";
import type { RedisOptions } from "ioredis";
import { silentLogger } from "../../core/logger.js";
import { PUBLISH_DEFAULTS, redisDeadStream } from "../../core/publish-command.js";
import { backoff, pause } from "../../core/retry.js";
import { handleBatch, type RedisBatchOptions } from "./redis-batch.js";
import { PendingClaimer } from "./redis-claimer.js";
import {
  ioredisStreamClient,
  isNoGroup,
  type StreamClient,
  type StreamGroup,
} from "./redis-stream-client.js";
import { runSessions, type Sleep } from "./sessions.js";
import type { Ingest, IngestOptions } from "./types.js";

export const DEFAULT_REDIS_STREAM = PUBLISH_DEFAULTS.redisStream;
export const DEFAULT_REDIS_GROUP = PUBLISH_DEFAULTS.redisGroup;

export interface RedisIngestOptions extends IngestOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Stream publishers XADD to, with the command JSON in field `command`. @default "switchboard:publish" */
  stream?: string;
  /** Dead letters (fields command, reason, code, entry, consumer, attempts). @default `${stream}:dead` */
  deadStream?: string;
  /** Consumer group shared by all gateways. @default "switchboard" */
  group?: string;
  /** Entries read (and claimed) per round trip. @default 100 */
  batchSize?: number;
  /** An entry a consumer took this long ago without acknowledging it is taken over, in ms. @default 30000 */
  claimIdleMs?: number;
  /** The dead-letter stream is trimmed to about this many entries. @default 100000 */
  deadMaxLen?: number;
  /** Extra ioredis options. */
  redis?: RedisOptions;
}

/** What the consumer is built on; tests pass fakes. */
export interface RedisIngestDeps {
  /** @default two ioredis connections to `url` */
  client?: StreamClient;
  /** @default a timer */
  sleep?: Sleep;
}

const READY_POLL_MS = 250;

/**
 * Consumes the Redis publish stream through a consumer group (consumer name: the gateway id):
 * each command goes to `handle`, and is acknowledged (XACK) after it returned. Entries that
 * another consumer took and left unacknowledged for `claimIdleMs` (its gateway died) are taken
 * over with XAUTOCLAIM. Bad entries, entries whose hand-over fails the same way every time, and
 * entries delivered `maxAttempts` times are added to the dead-letter stream with their reason
 * and acknowledged in one transaction.
 *
 * The group reads from the stream's start when it is first created, so commands added before
 * any gateway ran are delivered. Gateways consume in parallel: unlike the RabbitMQ queue, the
 * order across gateways is not kept.
 */
export function startRedisIngest(options: RedisIngestOptions, deps: RedisIngestDeps = {}): Ingest {
  const stream = options.stream ?? DEFAULT_REDIS_STREAM;
  const target: StreamGroup = {
    stream,
    group: options.group ?? DEFAULT_REDIS_GROUP,
    consumer: options.consumerName ?? `${hostname()}:${process.pid}`,
  };
  const batchSize = options.batchSize ?? 100;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const logger = options.logger ?? silentLogger;
  const isReady = options.isReady ?? (() => true);
  const sleep = deps.sleep ?? pause;
  const log = { stream, consumer: target.consumer };
  const client = deps.client ?? ioredisStreamClient(options.url, options.redis);
  const stop = new AbortController();
  // A blocking read is also how long a new pass of the claimer may wait.
  const blockMs = Math.max(50, Math.min(1000, Math.floor(claimIdleMs / 2)));
  const claimer = new PendingClaimer(client, target, {
    minIdleMs: claimIdleMs,
    count: batchSize,
    intervalMs: blockMs,
  });
  const batch: RedisBatchOptions = {
    client,
    target,
    dead: {
      stream: options.deadStream ?? redisDeadStream(stream),
      maxLen: options.deadMaxLen ?? 100_000,
    },
    handle: options.handle,
    isReady,
    signal: stop.signal,
    sleep,
    maxCommandBytes: options.maxCommandBytes ?? PUBLISH_DEFAULTS.maxCommandBytes,
    maxAttempts: options.maxAttempts ?? PUBLISH_DEFAULTS.maxAttempts,
    logger,
    log,
    onOutcome: options.onOutcome,
  };
  let announced = false;

  /**
   * One run of the read loop: makes sure the group exists, handles what this consumer name left
   * pending (in an earlier life, or before the connection broke), then claims idle entries of
   * other consumers and reads new ones, until an error, the gateway stops being ready, or close.
   */
  const session = async (healthy: () => void): Promise<void> => {
    if (await client.createGroup(target))
      logger.info({ ...log, group: target.group }, "consumer group created");
    if (!announced) {
      logger.info({ ...log, group: target.group, claimIdleMs }, "ingest consuming");
      announced = true;
    }
    claimer.restart();
    let ownPending = true;
    // Not ready: read nothing more, so that the entries stay for the gateways that are.
    while (!stop.signal.aborted && isReady()) {
      const claimed = await claimer.claim();
      if (claimed.length > 0) {
        logger.info({ ...log, entries: claimed.length }, "claimed entries of an idle consumer");
        if (!(await handleBatch(batch, claimed, true))) return;
      }
      if (ownPending) {
        const entries = await client.readGroup(target, { id: "0", count: batchSize });
        healthy();
        if (entries.length === 0) ownPending = false;
        else if (!(await handleBatch(batch, entries, true))) return;
        continue;
      }
      const entries = await client.readGroup(target, { id: ">", count: batchSize, blockMs });
      healthy();
      if (entries.length > 0 && !(await handleBatch(batch, entries, false))) return;
    }
  };

  const loop = runSessions({
    signal: stop.signal,
    isReady,
    readyPollMs: READY_POLL_MS,
    delays: backoff({ initialMs: 200, maxMs: 5000 }),
    sleep,
    session,
    onError: (err) =>
      logger.warn(
        { ...log, err },
        isNoGroup(err) ? "consumer group gone: recreating it" : "ingest read failed",
      ),
  });

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        stop.abort();
        client.interrupt(); // cuts a blocking read short
        await loop;
        await client.close();
      })();
      return closing;
    },
  };
}
