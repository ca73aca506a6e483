import { ErrorCode, errorMessage, isSwitchboardError } from "../../core/errors.js";
import type { CommandErrorCode } from "../../core/publish-command.js";

/**
 * Why a command became a dead letter (the `code` a dead letter carries): the command check's
 * codes, `undeliverable` when handing it over failed in a way that fails again on every try, and
 * `failed` when it was tried `maxAttempts` times.
 */
export type DeadLetterCode = CommandErrorCode | "undeliverable" | "failed";

export interface DeadLetterReason {
  code: DeadLetterCode;
  reason: string;
}

/**
 * Sorts a failed hand-over: a failure that depends only on the command (a stack overflow in a
 * recursive encoder, a value an encoder refuses, a `SwitchboardError` saying the argument is
 * invalid) fails the same way on every try, so retrying it only holds back the commands behind
 * it; it is returned as a dead-letter reason. Anything else (backplane not ready, broker down,
 * a timeout) may pass later: `undefined`, and the command is retried.
 */
export function deterministicFailure(err: unknown): DeadLetterReason | undefined {
  const deterministic =
    err instanceof RangeError ||
    err instanceof TypeError ||
    isSwitchboardError(err, ErrorCode.INVALID_ARGUMENT);
  if (!deterministic) return undefined;
  return { code: "undeliverable", reason: `cannot be delivered: ${errorMessage(err)}` };
}

/** The reason of a command that failed `attempts` times, the last time with `err`. */
export function exhausted(attempts: number, err: unknown): DeadLetterReason {
  return { code: "failed", reason: `failed ${attempts} times: ${errorMessage(err)}` };
}
