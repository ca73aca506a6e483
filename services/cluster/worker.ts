import type { Config } from "../gateway/config.js";
import { type GatewayProcess, runGateway } from "../gateway/main.js";
import { isIpcMessage, READY_MESSAGE, SHUTDOWN_MESSAGE } from "../lifecycle.js";
import { primarySlots } from "./connection-slots.js";
import { releaseEarlyConnections } from "./early-connections.js";
import { setupHandoverWorker } from "./handover.js";
import { serveMetricsToPrimary } from "./metrics.js";

/**
 * A worker of `switchboard cluster`: a gateway that does not listen; the primary hands it
 * connections over IPC (handover.ts), and the primary asks it to stop with SHUTDOWN_MESSAGE.
 */
export async function runClusterWorker(config: Config): Promise<GatewayProcess> {
  const running = await runGateway(config, {
    clusterWorker: true,
    connectionSlots: primarySlots(),
  });
  process.on("message", (message: unknown) => {
    if (isIpcMessage(message, SHUTDOWN_MESSAGE)) running.requestShutdown("primary");
  });
  setupHandoverWorker(running.gateway.io, running.logger);
  serveMetricsToPrimary(running.gateway.metrics.registry);
  // Every listener is in place: replay what the primary sent while this worker was loading.
  releaseEarlyConnections();
  process.send?.({ type: READY_MESSAGE });
  running.logger.info({ backplane: config.backplane }, "gateway worker started");
  return running;
}
