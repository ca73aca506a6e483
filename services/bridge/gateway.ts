import type { PublishCommand } from "../../core/publish-command.js";
import type { Config } from "../gateway/config.js";
import type { Logger } from "../gateway/logger.js";
import type { Gateway } from "../gateway/server.js";
import { startBridge } from "./bridge.js";

/** Values nested deeper than this in one Python message are refused. */
const MAX_DEPTH = 100;
/** Values (scalars and containers) in one Python message, at most. */
const MAX_ITEMS = 100_000;

export interface GatewayBridge {
  /** Migration mode: mirrors a publish command the gateway just delivered. */
  mirrorCommand(command: PublishCommand): void;
}

/**
 * Starts the Python bridge beside a gateway (when PYTHON_BRIDGE_URL is set): its metrics on the
 * gateway's registry, its close at the start of shutdown, and in migration mode the mirroring of
 * every client `publish` accepted here. Publish commands are mirrored by the caller, through
 * `mirrorCommand`, where it delivers them.
 */
export async function startGatewayBridge(
  gateway: Gateway,
  config: Config & { pythonBridgeUrl: string },
  logger: Logger,
): Promise<GatewayBridge> {
  const bridge = await startBridge({
    io: gateway.io,
    url: config.pythonBridgeUrl,
    channel: config.pythonBridgeChannel,
    mode: config.pythonBridgeMode,
    jsonData: config.pythonBridgeJsonData,
    maxMessageBytes: config.pythonBridgeMaxMessageBytes,
    maxDepth: MAX_DEPTH,
    maxItems: MAX_ITEMS,
    logger: logger.child({ component: "bridge" }),
    registry: gateway.metrics.registry,
  });
  gateway.onShutdown(() => bridge.close());
  logger.info(
    { channel: config.pythonBridgeChannel, mode: config.pythonBridgeMode },
    "Python bridge started",
  );
  if (config.pythonBridgeMode === "both") {
    gateway.onClientPublish((publish) =>
      bridge.mirror({
        event: publish.event,
        args: [publish.data],
        namespace: publish.namespace,
        rooms: [publish.room],
        skipSids: [publish.socket],
      }),
    );
  }
  return {
    mirrorCommand(command) {
      const data = command.data ?? null;
      bridge.mirror({
        event: command.event,
        args: command.id === undefined ? [data] : [data, { id: command.id }],
        namespace: command.namespace ?? "/",
        rooms: command.rooms ?? null,
        skipSids: command.except ?? [],
      });
    },
  };
}
