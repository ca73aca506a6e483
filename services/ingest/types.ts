import type { PublishCommand } from "../gateway/publish-command.js";

/** The subset of pino the consumers log with (pino's Logger fits). */
export interface IngestLogger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** What happened to one queued command: handed to the backplane, dead-lettered, or retried later. */
export type IngestOutcome = "delivered" | "dead" | "retried";

/** Options both consumers share. */
export interface IngestOptions {
  /** Hands a valid command to the backplane (the gateway passes `deliver`). A throw is a failed attempt. */
  handle: (command: PublishCommand) => void | Promise<void>;
  /**
   * Whether commands can be handed over now (the gateway: ready, backplane connected). While
   * false the consumer stops consuming, so that another gateway gets the commands. @default always
   */
  isReady?: () => boolean;
  /** Largest command, as UTF-8 JSON, in bytes; larger ones are dead letters. @default 262144 */
  maxCommandBytes?: number;
  /** Attempts at one valid command before it becomes a dead letter. @default 10 */
  maxAttempts?: number;
  /** Consumer name: the Redis consumer and the AMQP consumer tag. @default host:pid */
  consumerName?: string;
  logger?: IngestLogger;
  /** Called once per command handled, for metrics. */
  onOutcome?: (outcome: IngestOutcome) => void;
}

export interface Ingest {
  /** Stops consuming; what was taken but not yet acknowledged goes back to the queue. Idempotent. */
  close(): Promise<void>;
}

export const DEFAULT_MAX_COMMAND_BYTES = 256 * 1024;

export const silentLogger: IngestLogger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** A sleep that `signal` cuts short (resolves, never rejects). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** Reconnect delays: doubling from `initialMs` to `maxMs`, with ±20% jitter. */
export function backoff(initialMs: number, maxMs: number) {
  let next = initialMs;
  return {
    next(): number {
      const value = next * (0.8 + Math.random() * 0.4);
      next = Math.min(next * 2, maxMs);
      return value;
    },
    reset(): void {
      next = initialMs;
    },
  };
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
