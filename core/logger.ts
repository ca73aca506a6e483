/**
 * The logger every library part of Switchboard accepts: the subset of pino it uses, so a pino
 * logger fits as it is. Log an error as `{ err }` (the Error itself, not `String(err)`): pino's
 * `err` serializer keeps its type, stack and cause.
 */
export interface Logger {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
};

/** Whether `value` has the four methods of `Logger` (for options checked at run time). */
export function isLogger(value: unknown): value is Logger {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return LOG_LEVELS.every((level) => typeof candidate[level] === "function");
}

/** An error as plain data for a JSON log line, the way pino's `err` serializer writes it. */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out: Record<string, unknown> = { type: err.name, message: err.message, stack: err.stack };
  const code = (err as { code?: unknown }).code;
  if (code !== undefined) out.code = code;
  if (err.cause !== undefined) out.cause = serializeError(err.cause);
  return out;
}

/**
 * The default of libraries used without a logger: warnings and errors as JSON lines on stderr,
 * with `err` serialized (stack and cause kept); debug and info are dropped.
 */
export function stderrLogger(component: string): Logger {
  const line = (level: string, fields: object, message: string) => {
    const record: Record<string, unknown> = { level, component, msg: message, ...fields };
    if ("err" in record) record.err = serializeError(record.err);
    return JSON.stringify(record);
  };
  return {
    debug() {},
    info() {},
    warn: (fields, message) => console.warn(line("warn", fields, message)),
    error: (fields, message) => console.error(line("error", fields, message)),
  };
}
