import { type Logger, pino } from "pino";

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
