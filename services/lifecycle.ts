import type { Logger } from "../core/logger.js";

/**
 * How a Switchboard process starts and stops, shared by `switchboard gateway` (services/gateway)
 * and `switchboard cluster` (services/cluster), so that neither folder imports the other for it.
 */

/** IPC message from the cluster primary asking a worker to drain and exit. */
export const SHUTDOWN_MESSAGE = "switchboard:shutdown";
/** IPC message from a worker to its primary: set up, send it connections. */
export const READY_MESSAGE = "switchboard:ready";

/** Whether an IPC `message` is `{type}` of one of ours. */
export function isIpcMessage(message: unknown, type: string): boolean {
  return (message as { type?: unknown } | null)?.type === type;
}

/**
 * SIGTERM/SIGINT run `shutdown` once; the process exits 0 when it completes, or 1 when
 * `timeoutMs` passes first. A second signal exits at once (unless `forceOnSecondSignal` is false).
 * Returns the trigger, for shutdown requests that do not come as signals.
 */
export function exitOnSignals(
  logger: Logger & { flush?: () => void },
  timeoutMs: number,
  shutdown: () => Promise<void>,
  options: { forceOnSecondSignal?: boolean } = {},
): (signal: string) => void {
  let stoppingSince: number | undefined;
  const onSignal = (signal: string) => {
    if (stoppingSince !== undefined) {
      // `timeout`/terminals signal the process and its group at once: only a later ask forces.
      if (options.forceOnSecondSignal === false || Date.now() - stoppingSince < 1000) return;
      logger.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stoppingSince = Date.now();
    logger.info({ signal, timeoutMs }, "shutdown requested");
    const timer = setTimeout(() => {
      logger.error({ timeoutMs }, "shutdown timed out: exiting");
      process.exit(1);
    }, timeoutMs);
    shutdown().then(
      () => {
        clearTimeout(timer);
        logger.info({}, "shutdown complete");
        logger.flush?.();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return onSignal;
}
