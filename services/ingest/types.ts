import type { Logger } from "../../core/logger.js";
import type { PublishCommand } from "../../core/publish-command.js";

/** The subset of pino the consumers log with (pino's Logger fits); the name is kept for importers. */
export type IngestLogger = Logger;

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
  /** Consumer name: the Redis consumer and the AMQP consumer tag (the gateway passes GATEWAY_ID). */
  consumerName?: string;
  logger?: IngestLogger;
  /** Called once per command handled, for metrics. */
  onOutcome?: (outcome: IngestOutcome) => void;
}

export interface Ingest {
  /** Stops consuming; what was taken but not yet acknowledged goes back to the queue. Idempotent. */
  close(): Promise<void>;
}
