import { createBackplane } from "../../adapters/backplane.js";
import { ErrorCode, errorMessage, isSwitchboardError } from "../../core/errors.js";
import { exitOnSignals } from "../lifecycle.js";
import type { ConnectionSlots } from "./admission.js";
import { type Authenticator, createAuthenticator } from "./auth.js";
import { type Config, loadConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";
import { createGateway, type Gateway } from "./server.js";

export interface RunGatewayOptions {
  /**
   * Inside `switchboard cluster` (services/cluster/worker.ts): the primary owns the port and hands
   * connections over IPC, so the gateway does not listen, and the primary, not a second signal,
   * decides when it stops.
   */
  clusterWorker?: boolean;
  /** MAX_CONNECTIONS_PER_IP slots kept with other processes (the cluster primary's). */
  connectionSlots?: ConnectionSlots;
}

/** Reads the config or stops the process with one line per bad variable. */
export function loadConfigOrExit(env: Record<string, string | undefined>): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    exitOnConfigError(err);
  }
}

/** A setting that cannot be honoured stops the process as a bad variable does (exit 78). */
export function exitOnConfigError(err: unknown): never {
  if (isSwitchboardError(err, ErrorCode.INVALID_CONFIG)) {
    const problems = (err.details?.problems as string[] | undefined) ?? [err.message];
    for (const problem of problems) process.stderr.write(`switchboard: ${problem}\n`);
    process.exit(78); // EX_CONFIG
  }
  throw err;
}

/** The client authenticator of `config`; a JWKS that cannot be loaded stops the process. */
async function authenticatorOrExit(config: Config, logger: Logger): Promise<Authenticator> {
  try {
    return await createAuthenticator(
      {
        jwtSecret: config.authJwtSecret,
        jwksUrl: config.authJwksUrl,
        issuer: config.authJwtIssuer,
        audience: config.authJwtAudience,
        clockSkewSec: config.authClockSkewSec,
        jwksTimeoutMs: config.authJwksTimeoutMs,
        jwksCooldownMs: config.authJwksCooldownMs,
        jwksCacheMaxAgeMs: config.authJwksCacheMaxAgeMs,
        defaultRooms: config.authDefaultRooms,
        defaultPublish: config.authDefaultPublish,
      },
      logger,
    );
  } catch (err) {
    logger.flush();
    exitOnConfigError(err);
  }
}

/** A running gateway process. */
export interface GatewayProcess {
  gateway: Gateway;
  logger: Logger;
  /** Starts the same bounded shutdown as SIGTERM does (for requests that come as messages). */
  requestShutdown(reason: string): void;
}

/** `switchboard gateway`: one gateway process, until SIGTERM/SIGINT. */
export async function runGateway(
  config: Config,
  options: RunGatewayOptions = {},
): Promise<GatewayProcess> {
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  process.on("unhandledRejection", (err) => {
    // Broker clients reject pending commands when the broker refuses the credentials: that is
    // an operator's configuration problem, and the log should say so.
    const refused = brokerAuthFailure(err);
    if (refused) {
      logger.error(
        { broker: refused.broker, reason: refused.reason },
        `broker authentication failed: check the credentials in ${refused.variable}`,
      );
    } else {
      logger.error({ err }, "unhandled rejection");
    }
  });
  // Before anything opens: a setting that cannot be honoured must not leave a door open.
  const authenticator = await authenticatorOrExit(config, logger);
  const backplane = await createBackplane(config, logger);
  const gateway = createGateway({
    config,
    backplane,
    logger,
    authenticator,
    connectionSlots: options.connectionSlots,
  });
  const { startPublishing } = await import("./publishing.js");
  await startPublishing(gateway, config, logger);

  const requestShutdown = exitOnSignals(
    logger,
    config.shutdownTimeoutMs,
    () => gateway.shutdown(),
    {
      // A worker may get the terminal's SIGINT and its primary's request together: not a second ask.
      forceOnSecondSignal: !options.clusterWorker,
    },
  );
  if (!options.clusterWorker) {
    const port = await gateway.listen();
    logger.info({ port, host: config.host, backplane: backplane.kind }, "gateway listening");
  }
  if (authenticator.mode === "dev") {
    logger.warn("no AUTH_JWT_SECRET or AUTH_JWKS_URL: clients are not authenticated (dev mode)");
  }
  if (config.corsOrigins.length === 0 || config.corsOrigins.includes("*")) {
    logger.warn("CORS_ORIGINS unset or *: web pages of every origin may connect");
  }
  return { gateway, logger, requestShutdown };
}

/** A broker's refusal of the credentials, recognised by its reply (never echoes the URL). */
export function brokerAuthFailure(
  err: unknown,
): { broker: "redis" | "amqp"; variable: string; reason: string } | undefined {
  const message = errorMessage(err);
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) {
    return { broker: "redis", variable: "REDIS_URL", reason: message.slice(0, 200) };
  }
  if (/ACCESS[-_]REFUSED/.test(message)) {
    return { broker: "amqp", variable: "AMQP_URL", reason: message.slice(0, 200) };
  }
  return undefined;
}
