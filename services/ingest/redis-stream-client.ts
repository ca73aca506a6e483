import { createRequire } from "node:module";
import type { RedisOptions } from "ioredis";
import { errorMessage } from "../../core/errors.js";
import { backoffDelay } from "../../core/retry.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Redis } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");

/**
 * One stream entry as Redis returns it; `fields` is null when the entry was deleted. The real
 * client returns the field values as bytes: a command that is not valid UTF-8 must be seen as
 * such (and dead-lettered), not decoded with U+FFFD in place of its bad bytes and delivered.
 */
export interface StreamEntry {
  id: string;
  fields: Array<string | Buffer> | null;
}

/** A dead letter as it is added to the dead-letter stream. */
export interface StreamDeadLetter {
  /** The entry's id in the publish stream. */
  entry: string;
  /** The entry's `command` field, byte for byte. */
  command: string | Buffer;
  reason: string;
  code: string;
  consumer: string;
  attempts: number;
}

/** The field/value list of a dead-letter entry, in the order consumers of the dead stream read. */
export function deadLetterFields(letter: StreamDeadLetter): Array<string | Buffer> {
  return [
    "command",
    letter.command,
    "reason",
    letter.reason,
    "code",
    letter.code,
    "entry",
    letter.entry,
    "consumer",
    letter.consumer,
    "attempts",
    String(letter.attempts),
  ];
}

/** Where one consumer reads: stream, group, consumer name. */
export interface StreamGroup {
  stream: string;
  group: string;
  consumer: string;
}

/**
 * The Redis commands the stream consumer uses, one method each, so that the consumer can be
 * driven by a fake with the same semantics in unit tests. `ioredisStreamClient` is the real one.
 */
export interface StreamClient {
  /** XGROUP CREATE … 0 MKSTREAM; false when the group exists. */
  createGroup(target: StreamGroup): Promise<boolean>;
  /**
   * XREADGROUP: `">"` reads new entries, blocking up to `blockMs`; `"0"` re-reads this consumer's
   * own pending entries. Each read counts as a delivery.
   */
  readGroup(
    target: StreamGroup,
    options: { id: ">" | "0"; count: number; blockMs?: number },
  ): Promise<StreamEntry[]>;
  /** XAUTOCLAIM: takes over entries idle for `minIdleMs`, scanning on from `cursor`. */
  autoClaim(
    target: StreamGroup,
    options: { minIdleMs: number; cursor: string; count: number },
  ): Promise<{ cursor: string; entries: StreamEntry[] }>;
  /** XPENDING: how many times each of this consumer's pending entries in `first..last` was delivered. */
  deliveryCounts(
    target: StreamGroup,
    range: { first: string; last: string; count: number },
  ): Promise<Map<string, number>>;
  /**
   * XADD every dead letter to `deadStream` (trimmed to about `deadMaxLen`) and XACK `ids`, in one
   * transaction: an entry is never acknowledged without its dead letter, nor dead twice.
   */
  settle(
    target: StreamGroup,
    ids: string[],
    deadLetters: StreamDeadLetter[],
    dead: { stream: string; maxLen: number },
  ): Promise<void>;
  /** Cuts a blocking read short: it fails at once. Later commands still work. */
  interrupt(): void;
  /** Closes the connections. Idempotent. */
  close(): Promise<void>;
}

/** True for the error Redis answers when the group (or the stream) is gone. */
export function isNoGroup(err: unknown): boolean {
  return errorMessage(err).startsWith("NOGROUP");
}

/**
 * The real client: two ioredis connections, since a blocking read holds its connection; every
 * other command goes through the second. ioredis reconnects by itself; a command sent while it
 * is disconnected fails after one retry and the consumer backs off.
 */
export function ioredisStreamClient(url: string, options: RedisOptions = {}): StreamClient {
  const redisOptions: RedisOptions = {
    retryStrategy: (attempt) => backoffDelay(attempt, { initialMs: 100, maxMs: 5000 }),
    maxRetriesPerRequest: 1,
    ...options,
  };
  const reader = new Redis(url, redisOptions);
  const writer = new Redis(url, redisOptions);
  for (const client of [reader, writer]) client.on("error", () => {});
  let closing: Promise<void> | undefined;
  return {
    async createGroup({ stream, group }) {
      try {
        await writer.xgroup("CREATE", stream, group, "0", "MKSTREAM");
        return true;
      } catch (err) {
        if (errorMessage(err).startsWith("BUSYGROUP")) return false;
        throw err;
      }
    },
    async readGroup({ stream, group, consumer }, { id, count, blockMs }) {
      const block = blockMs === undefined ? [] : ["BLOCK", blockMs];
      const reply = await (blockMs === undefined ? writer : reader).callBuffer(
        "XREADGROUP",
        "GROUP",
        group,
        consumer,
        "COUNT",
        count,
        ...block,
        "STREAMS",
        stream,
        id,
      );
      if (!Array.isArray(reply)) return [];
      const [first] = reply as Array<[Buffer, RawEntry[]]>;
      return toEntries(first?.[1] ?? []);
    },
    async autoClaim({ stream, group, consumer }, { minIdleMs, cursor, count }) {
      const [next, claimed] = (await writer.callBuffer(
        "XAUTOCLAIM",
        stream,
        group,
        consumer,
        minIdleMs,
        cursor,
        "COUNT",
        count,
      )) as [Buffer, RawEntry[]];
      return { cursor: next.toString(), entries: toEntries(claimed) };
    },
    async deliveryCounts({ stream, group, consumer }, { first, last, count }) {
      const rows = (await writer.xpending(stream, group, first, last, count, consumer)) as Array<
        [string, string, number, number]
      >;
      return new Map(rows.map(([id, , , delivered]) => [id, Number(delivered)]));
    },
    async settle({ stream, group }, ids, deadLetters, dead) {
      if (ids.length === 0) return;
      const tx = writer.multi();
      for (const letter of deadLetters) {
        tx.xadd(dead.stream, "MAXLEN", "~", dead.maxLen, "*", ...deadLetterFields(letter));
      }
      tx.xack(stream, group, ...ids);
      await tx.exec();
    },
    interrupt() {
      reader.disconnect();
    },
    close() {
      closing ??= (async () => {
        reader.disconnect();
        await writer.quit().catch(() => {});
        writer.disconnect();
      })();
      return closing;
    },
  };
}

/** An entry as XREADGROUP and XAUTOCLAIM return it with replies as bytes. */
type RawEntry = [Buffer, Buffer[] | null];

function toEntries(raw: RawEntry[]): StreamEntry[] {
  return raw.map(([id, fields]) => ({ id: id.toString(), fields }));
}
