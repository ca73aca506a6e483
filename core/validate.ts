import { ErrorCode, SwitchboardError } from "./errors.js";

/**
 * Options checked once, up front, with an error that names the option (undici's way). These are
 * for options passed in code; environment variables are checked by the gateway's config schema.
 */

/** `option "name" must be <expected>, got <value>` as SWB_ERR_INVALID_ARGUMENT. */
export function invalidOption(option: string, expected: string, value: unknown): SwitchboardError {
  const shown = typeof value === "string" ? JSON.stringify(value) : String(value);
  return new SwitchboardError(
    ErrorCode.INVALID_ARGUMENT,
    `option "${option}" must be ${expected}, got ${shown}`,
  );
}

export function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value > 0;
}

/** `value` when it is a positive integer, `fallback` when undefined; throws naming `option` else. */
export function positiveInt(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (!isPositiveInteger(value)) throw invalidOption(option, "a positive integer", value);
  return value;
}

/** `value` when it is a boolean, `fallback` when undefined; throws naming `option` else. */
export function bool(value: unknown, option: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw invalidOption(option, "a boolean", value);
  return value;
}
