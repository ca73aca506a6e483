import { createBackplane } from "../../adapters/backplane.js";
import { loadConfig } from "../../services/gateway/config.js";
import { createLogger } from "../../services/gateway/logger.js";
import { createGateway, type Gateway } from "../../services/gateway/server.js";

/** A memory-backplane gateway inside the test process, for protocol-level tests. */
export async function startInProcessGateway(
  env: Record<string, string> = {},
): Promise<{ gateway: Gateway; url: string; close: () => Promise<void> }> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    SHUTDOWN_DRAIN_MS: "0",
    GATEWAY_ID: "test-gw",
    ...env,
  });
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  const gateway = createGateway({ config, backplane: await createBackplane(config), logger });
  const port = await gateway.listen();
  return { gateway, url: `http://127.0.0.1:${port}`, close: () => gateway.shutdown() };
}
