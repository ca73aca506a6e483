import type { Config } from "./config.js";
import type { Logger } from "./logger.js";
import type { Gateway } from "./server.js";

/**
 * Starts what runs beside the Socket.IO server in every gateway (publish ingest, HTTP publish
 * API…). Each service registers its own shutdown with `gateway.onShutdown`.
 */
export async function startServices(
  _gateway: Gateway,
  _config: Config,
  _logger: Logger,
): Promise<void> {}
