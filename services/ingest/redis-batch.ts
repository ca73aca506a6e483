import type { Logger } from "../../core/logger.js";
import { checkPublishCommand, type PublishCommand } from "../../core/publish-command.js";
import { backoffDelay } from "../../core/retry.js";
import { type DeadLetterReason, deterministicFailure, exhausted } from "./failures.js";
import type {
  StreamClient,
  StreamDeadLetter,
  StreamEntry,
  StreamGroup,
} from "./redis-stream-client.js";
import type { Sleep } from "./sessions.js";
import type { IngestOptions } from "./types.js";

export interface RedisBatchOptions {
  client: StreamClient;
  target: StreamGroup;
  /** The dead-letter stream and its approximate length bound. */
  dead: { stream: string; maxLen: number };
  handle: IngestOptions["handle"];
  isReady: () => boolean;
  /** Aborted when the consumer closes: the batch stops before the next hand-over. */
  signal: AbortSignal;
  sleep: Sleep;
  maxCommandBytes: number;
  maxAttempts: number;
  logger: Logger;
  /** Fields on every log line (stream, consumer). */
  log: Record<string, unknown>;
  onOutcome?: IngestOptions["onOutcome"];
}

/** Pause before handing a command over again, in ms, after its `attempt`-th try failed. */
export const retryDelayMs = (attempt: number) =>
  backoffDelay(attempt - 1, { initialMs: 100, maxMs: 2000 });

/**
 * Hands a batch of stream entries to `handle`, in order, and settles it in one transaction:
 * delivered and dead-lettered entries are acknowledged, dead letters added with their reason.
 * A bad entry, or one whose hand-over fails the same way every time, is a dead letter at once;
 * any other failure is retried in place (so the entries behind it keep their order) until
 * `maxAttempts`. `recovered` entries (re-read or claimed) were delivered before: their attempts
 * count on from what the group recorded. Resolves false when it stopped early (closing, or the
 * gateway not ready): the entries it did not reach stay pending, to be read again.
 */
export async function handleBatch(
  options: RedisBatchOptions,
  entries: StreamEntry[],
  recovered: boolean,
): Promise<boolean> {
  const attempts = recovered ? await deliveryCounts(options, entries) : new Map<string, number>();
  const settled: string[] = [];
  const deadLetters: StreamDeadLetter[] = [];
  const dead = (id: string, command: string | Buffer, why: DeadLetterReason, attempt: number) => {
    deadLetters.push({
      entry: id,
      command,
      ...why,
      consumer: options.target.consumer,
      attempts: attempt,
    });
    settled.push(id);
    options.logger.warn({ ...options.log, entry: id, ...why }, "dead letter");
    options.onOutcome?.("dead");
  };
  let complete = true;
  for (const { id, fields } of entries) {
    if (fields === null) {
      settled.push(id); // deleted from the stream while pending
      continue;
    }
    const attempt = attempts.get(id) ?? 1;
    const raw = field(fields, "command");
    if (raw === undefined) {
      dead(id, "", { code: "invalid_command", reason: "entry has no `command` field" }, attempt);
      continue;
    }
    const check = checkPublishCommand(raw, { maxBytes: options.maxCommandBytes });
    if (!check.ok) {
      dead(id, raw, { code: check.code, reason: check.reason }, attempt);
      continue;
    }
    if (options.signal.aborted || !options.isReady()) {
      complete = false;
      break;
    }
    if (attempt > options.maxAttempts) {
      const why = {
        code: "failed",
        reason: `delivered ${attempt - 1} times without success`,
      } as const;
      dead(id, raw, why, attempt);
      continue;
    }
    const outcome = await deliver(options, check.command, id, attempt);
    if (outcome === "stopped") {
      complete = false;
      break;
    }
    if (outcome !== "delivered") {
      dead(id, raw, outcome, outcome.attempt);
      continue;
    }
    settled.push(id);
    options.onOutcome?.("delivered");
  }
  await options.client.settle(options.target, settled, deadLetters, options.dead);
  return complete;
}

/** Calls `handle` until it succeeds, must give up, or the consumer must stop. */
async function deliver(
  options: RedisBatchOptions,
  command: PublishCommand,
  id: string,
  first: number,
): Promise<"delivered" | "stopped" | (DeadLetterReason & { attempt: number })> {
  for (let attempt = first; ; attempt++) {
    try {
      await options.handle(command);
      return "delivered";
    } catch (err) {
      const why =
        deterministicFailure(err) ??
        (attempt >= options.maxAttempts ? exhausted(attempt, err) : undefined);
      if (why !== undefined) return { ...why, attempt };
      options.logger.warn({ ...options.log, entry: id, attempt, err }, "command failed: retrying");
      options.onOutcome?.("retried");
    }
    await options.sleep(retryDelayMs(attempt), options.signal);
    if (options.signal.aborted || !options.isReady()) return "stopped";
  }
}

/** Delivery counts the group recorded for entries that are not new (XPENDING). */
async function deliveryCounts(
  options: RedisBatchOptions,
  entries: StreamEntry[],
): Promise<Map<string, number>> {
  const first = entries[0]?.id;
  const last = entries.at(-1)?.id;
  if (first === undefined || last === undefined) return new Map();
  return options.client.deliveryCounts(options.target, { first, last, count: entries.length });
}

function field(fields: Array<string | Buffer>, name: string): string | Buffer | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i]?.toString() === name) return fields[i + 1];
  }
  return undefined;
}
