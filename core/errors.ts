/**
 * One error type for the whole project, in the manner of undici: callers and
 * tests branch on the stable `code`, never on message text. Every code any
 * part of Switchboard throws is in this one list.
 */
export const ErrorCode = {
  /** An argument or option failed validation; the message names it. */
  INVALID_ARGUMENT: "SWB_ERR_INVALID_ARGUMENT",
  /** An environment variable failed validation; `details.problems` has one line per variable. */
  INVALID_CONFIG: "SWB_ERR_INVALID_CONFIG",
  /** A command line could not be understood (unknown flag, missing value); the message says which. */
  USAGE: "SWB_ERR_USAGE",
  /** The broker connection or channel was lost or could not be opened. */
  BROKER_CONNECTION: "SWB_ERR_BROKER_CONNECTION",
  /** A publish could not be handed to the broker within its time bound. */
  PUBLISH_TIMEOUT: "SWB_ERR_PUBLISH_TIMEOUT",
  /** A cluster request (fetchSockets, serverSideEmitWithAck) timed out. */
  REQUEST_TIMEOUT: "SWB_ERR_REQUEST_TIMEOUT",
  /** The component was closed before or while the operation ran. */
  CLOSED: "SWB_ERR_CLOSED",
  /** A frame could not be decoded (garbage, or another wire version). */
  DECODE: "SWB_ERR_DECODE",
  /** The server refused the credentials (HTTP 401: missing or unknown API key). */
  UNAUTHORIZED: "SWB_ERR_UNAUTHORIZED",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class SwitchboardError extends Error {
  override readonly name = "SwitchboardError";
  readonly code: ErrorCode;
  /** Machine-readable context (e.g. `missingNodes` of a request timeout). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Readonly<Record<string, unknown>> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }
}

export function isSwitchboardError(value: unknown, code?: ErrorCode): value is SwitchboardError {
  return value instanceof SwitchboardError && (code === undefined || value.code === code);
}

/** The message of anything thrown, for log fields and reasons (stack and cause go to `err`). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
