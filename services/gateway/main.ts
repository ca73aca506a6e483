import { createBackplane } from "../../adapters/backplane.js";
import { type Config, ConfigError, loadConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { createGateway, type Gateway } from "./server.js";

/** IPC message from the cluster primary asking a worker to drain and exit. */
export const SHUTDOWN_MESSAGE = "switchboard:shutdown";
/** IPC message from a worker to its primary: set up, send it connections. */
export const READY_MESSAGE = "switchboard:ready";

export interface RunGatewayOptions {
  /** Inside `switchboard cluster`: the primary owns the port and hands connections over IPC. */
  clusterWorker?: boolean;
}

/** Reads the config or stops the process with one line per bad variable. */
export function loadConfigOrExit(env: Record<string, string | undefined>): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) process.stderr.write(`switchboard: ${problem}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
}

/** `switchboard gateway`: one gateway process, until SIGTERM/SIGINT. */
export async function runGateway(
  config: Config,
  options: RunGatewayOptions = {},
): Promise<Gateway> {
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  process.on("unhandledRejection", (err) => logger.error({ err }, "unhandled rejection"));
  const backplane = await createBackplane(config, logger);
  const gateway = createGateway({ config, backplane, logger });
  const { startServices } = await import("./services.js");
  await startServices(gateway, config, logger);

  const shutdown = exitOnSignals(logger, config.shutdownTimeoutMs, () => gateway.shutdown(), {
    // A worker may get the terminal's SIGINT and its primary's request together: not a second ask.
    forceOnSecondSignal: !options.clusterWorker,
  });
  if (options.clusterWorker) {
    process.on("message", (message: unknown) => {
      if ((message as { type?: unknown } | null)?.type === SHUTDOWN_MESSAGE) shutdown("primary");
    });
    const { setupWorker } = await import("@socket.io/sticky");
    setupWorker(gateway.io);
    // Every listener is in place: replay what the primary sent while this worker was loading.
    const { releaseEarlyConnections } = await import("../cluster/early-connections.js");
    releaseEarlyConnections();
    process.send?.({ type: READY_MESSAGE });
    logger.info({ backplane: backplane.kind }, "gateway worker started");
  } else {
    const port = await gateway.listen();
    logger.info({ port, host: config.host, backplane: backplane.kind }, "gateway listening");
  }
  if (config.authJwtSecret === undefined && config.authJwksUrl === undefined) {
    logger.warn("no AUTH_JWT_SECRET or AUTH_JWKS_URL: clients are not authenticated (dev mode)");
  }
  return gateway;
}

/**
 * SIGTERM/SIGINT run `shutdown` once; the process exits 0 when it completes, or 1 when
 * `timeoutMs` passes first. A second signal exits at once (unless `forceOnSecondSignal` is false).
 * Returns the trigger, for shutdown requests that do not come as signals.
 */
export function exitOnSignals(
  logger: Logger,
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
        logger.info("shutdown complete");
        logger.flush();
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
