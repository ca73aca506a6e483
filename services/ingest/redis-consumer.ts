import { hostname } from "node:os";
import { Redis, type RedisOptions } from "ioredis";
import { errorMessage } from "../../core/errors.js";
import { silentLogger } from "../../core/logger.js";
import {
  checkPublishCommand,
  PUBLISH_DEFAULTS,
  type PublishCommand,
  redisDeadStream,
} from "../../core/publish-command.js";
import { backoff, backoffDelay, pause } from "../../core/retry.js";
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

type Entry = [id: string, fields: string[] | null];

const READY_POLL_MS = 250;

/**
 * Consumes the Redis publish stream through a consumer group (consumer name: the gateway id):
 * each command goes to `handle`, and is acknowledged (XACK) after it returned. Entries that
 * another consumer took and left unacknowledged for `claimIdleMs` (its gateway died) are taken
 * over with XAUTOCLAIM. Bad entries, and entries delivered `maxAttempts` times, are added to the
 * dead-letter stream with their reason and acknowledged in one transaction.
 *
 * The group reads from the stream's start when it is first created, so commands added before
 * any gateway ran are delivered. Gateways consume in parallel: unlike the RabbitMQ queue, the
 * order across gateways is not kept.
 */
export function startRedisIngest(options: RedisIngestOptions): Ingest {
  const stream = options.stream ?? DEFAULT_REDIS_STREAM;
  const deadStream = options.deadStream ?? redisDeadStream(stream);
  const group = options.group ?? DEFAULT_REDIS_GROUP;
  const consumer = options.consumerName ?? `${hostname()}:${process.pid}`;
  const batchSize = options.batchSize ?? 100;
  const claimIdleMs = options.claimIdleMs ?? 30_000;
  const maxAttempts = options.maxAttempts ?? PUBLISH_DEFAULTS.maxAttempts;
  const maxBytes = options.maxCommandBytes ?? PUBLISH_DEFAULTS.maxCommandBytes;
  const deadMaxLen = options.deadMaxLen ?? 100_000;
  const logger = options.logger ?? silentLogger;
  const isReady = options.isReady ?? (() => true);
  const log = { stream, consumer };
  const redisOptions: RedisOptions = {
    retryStrategy: (attempt) => backoffDelay(attempt, { initialMs: 100, maxMs: 5000 }),
    maxRetriesPerRequest: 1,
    ...options.redis,
  };
  // Blocking reads hold their connection: commands go through another one.
  const reader = new Redis(options.url, redisOptions);
  const writer = new Redis(options.url, redisOptions);
  for (const client of [reader, writer]) client.on("error", () => {});
  const stop = new AbortController();
  const blockMs = Math.max(50, Math.min(1000, Math.floor(claimIdleMs / 2)));

  /** Handles a batch in order; returns false when it stopped early (to be retried). */
  const processBatch = async (entries: Entry[], recovered: boolean): Promise<boolean> => {
    const attempts = recovered ? await deliveryCounts(entries) : new Map<string, number>();
    const tx = writer.multi();
    const acked: string[] = [];
    let complete = true;
    const dead = (id: string, raw: string, code: string, reason: string, attempt: number) => {
      tx.xadd(
        deadStream,
        "MAXLEN",
        "~",
        deadMaxLen,
        "*",
        "command",
        raw,
        "reason",
        reason,
        "code",
        code,
        "entry",
        id,
        "consumer",
        consumer,
        "attempts",
        String(attempt),
      );
      acked.push(id);
      logger.warn({ ...log, entry: id, code, reason }, "dead letter");
      options.onOutcome?.("dead");
    };
    for (const [id, fields] of entries) {
      if (fields === null) {
        acked.push(id); // deleted from the stream while pending
        continue;
      }
      const attempt = attempts.get(id) ?? 1;
      const raw = field(fields, "command");
      if (raw === undefined) {
        dead(id, "", "invalid_command", "entry has no `command` field", attempt);
        continue;
      }
      const check = checkPublishCommand(raw, { maxBytes });
      if (!check.ok) {
        dead(id, raw, check.code, check.reason, attempt);
        continue;
      }
      if (stop.signal.aborted || !isReady()) {
        complete = false;
        break;
      }
      if (attempt > maxAttempts) {
        dead(id, raw, "failed", `delivered ${attempt - 1} times without success`, attempt);
        continue;
      }
      // Retried in place, so that the entries behind it keep their order and their counts.
      const outcome = await attemptDelivery(check.command, id, attempt);
      if (outcome === "stopped") {
        complete = false;
        break;
      }
      if (outcome !== "ok") {
        dead(id, raw, "failed", outcome.reason, outcome.attempt);
        continue;
      }
      acked.push(id);
      options.onOutcome?.("delivered");
    }
    if (acked.length > 0) {
      tx.xack(stream, group, ...acked);
      await tx.exec();
    } else {
      tx.discard();
    }
    return complete;
  };

  /** Calls `handle` until it succeeds, `maxAttempts` is reached, or the consumer must stop. */
  const attemptDelivery = async (
    command: PublishCommand,
    id: string,
    first: number,
  ): Promise<"ok" | "stopped" | { reason: string; attempt: number }> => {
    for (let attempt = first; ; attempt++) {
      try {
        await options.handle(command);
        return "ok";
      } catch (err) {
        if (attempt >= maxAttempts) {
          return { reason: `failed ${attempt} times: ${errorMessage(err)}`, attempt };
        }
        logger.warn({ ...log, entry: id, attempt, err }, "command failed: retrying");
        options.onOutcome?.("retried");
      }
      await pause(backoffDelay(attempt - 1, { initialMs: 100, maxMs: 2000 }), stop.signal);
      if (stop.signal.aborted || !isReady()) return "stopped";
    }
  };

  /** Delivery counts of pending entries (XPENDING), for entries that are not new. */
  const deliveryCounts = async (entries: Entry[]): Promise<Map<string, number>> => {
    const first = entries[0]?.[0];
    const last = entries.at(-1)?.[0];
    const counts = new Map<string, number>();
    if (first === undefined || last === undefined) return counts;
    const rows = (await writer.xpending(
      stream,
      group,
      first,
      last,
      entries.length,
      consumer,
    )) as Array<[string, string, number, number]>;
    for (const [id, , , count] of rows) counts.set(id, Number(count));
    return counts;
  };

  const ensureGroup = async () => {
    try {
      await writer.xgroup("CREATE", stream, group, "0", "MKSTREAM");
      logger.info({ ...log, group }, "consumer group created");
    } catch (err) {
      if (!errorMessage(err).startsWith("BUSYGROUP")) throw err;
    }
  };

  const loop = (async () => {
    const delays = backoff({ initialMs: 200, maxMs: 5000 });
    let groupReady = false;
    // First what this consumer name left unacknowledged in an earlier life.
    let ownPending = true;
    let nextClaimAt = 0;
    let announced = false;
    while (!stop.signal.aborted) {
      if (!isReady()) {
        ownPending = true;
        await pause(READY_POLL_MS, stop.signal);
        continue;
      }
      try {
        if (!groupReady) {
          await ensureGroup();
          groupReady = true;
        }
        if (!announced) {
          logger.info({ ...log, group, claimIdleMs }, "ingest consuming");
          announced = true;
        }
        if (Date.now() >= nextClaimAt) {
          const [cursor, claimed] = (await writer.xautoclaim(
            stream,
            group,
            consumer,
            claimIdleMs,
            "0-0",
            "COUNT",
            batchSize,
          )) as [string, Entry[]];
          if (claimed.length > 0) {
            logger.info({ ...log, entries: claimed.length }, "claimed entries of an idle consumer");
            if (!(await processBatch(claimed, true))) ownPending = true;
          }
          nextClaimAt = cursor === "0-0" ? Date.now() + blockMs : 0;
        }
        if (ownPending) {
          const entries = parseRead(
            await writer.xreadgroup(
              "GROUP",
              group,
              consumer,
              "COUNT",
              batchSize,
              "STREAMS",
              stream,
              "0",
            ),
          );
          if (entries.length === 0) ownPending = false;
          else if (!(await processBatch(entries, true))) await pause(100, stop.signal);
          continue;
        }
        const entries = parseRead(
          await reader.xreadgroup(
            "GROUP",
            group,
            consumer,
            "COUNT",
            batchSize,
            "BLOCK",
            blockMs,
            "STREAMS",
            stream,
            ">",
          ),
        );
        if (entries.length > 0 && !(await processBatch(entries, false))) {
          ownPending = true;
          await pause(100, stop.signal);
        }
        delays.reset();
      } catch (err) {
        if (stop.signal.aborted) break;
        if (errorMessage(err).startsWith("NOGROUP")) groupReady = false;
        ownPending = true;
        logger.warn({ ...log, err }, "ingest read failed");
        await pause(delays.next(), stop.signal);
      }
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        stop.abort();
        reader.disconnect(); // cuts a blocking read short
        await loop;
        await writer.quit().catch(() => {});
        writer.disconnect();
      })();
      return closing;
    },
  };
}

function parseRead(reply: unknown): Entry[] {
  if (!Array.isArray(reply)) return [];
  const [first] = reply as Array<[string, Entry[]]>;
  return first?.[1] ?? [];
}

function field(fields: string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}
