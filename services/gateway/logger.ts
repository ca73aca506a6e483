import { createRequire } from "node:module";
import type { Logger } from "pino";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { pino } = createRequire(import.meta.url)("pino") as typeof import("pino");

export type { Logger } from "pino";

/** One JSON line per event, with the gateway id bound once so that every line carries it. */
export function createLogger(options: { gatewayId: string; level: string }): Logger {
  return pino({
    level: options.level,
    base: { gateway: options.gatewayId, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
