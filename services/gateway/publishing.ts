import type { Ingest } from "../ingest/index.js";
import type { Config } from "./config.js";
import { deliver } from "./deliver.js";
import type { Logger } from "./logger.js";
import { createPublishRoute } from "./publish-http.js";
import type { Gateway } from "./server.js";

/**
 * The external publishing paths of a gateway, beside its Socket.IO server: the HTTP publish API
 * (`POST /v1/publish`) and the consumers of the RabbitMQ publish queue and the Redis publish
 * stream. All end in `deliver`. The consumers stop with `gateway.onShutdown`. With
 * PYTHON_BRIDGE_URL, the Python bridge too (services/bridge): it delivers what a Flask-SocketIO /
 * python-socketio app emits, and in migration mode mirrors what `deliver` delivered.
 */
export async function startPublishing(
  gateway: Gateway,
  config: Config,
  logger: Logger,
): Promise<void> {
  const { ingestedCommands: ingested, httpPublishes } = gateway.metrics;
  const isReady = () => gateway.readiness().ready;
  const { pythonBridgeUrl } = config;
  const bridge = pythonBridgeUrl
    ? await (await import("../bridge/gateway.js")).startGatewayBridge(
        gateway,
        { ...config, pythonBridgeUrl },
        logger,
      )
    : undefined;
  const served = new Set(config.namespaces);
  const handle = (command: Parameters<typeof deliver>[1]) => {
    deliver(gateway.io, command, served);
    bridge?.mirrorCommand(command);
  };

  gateway.addRoute(
    createPublishRoute({
      apiKeys: config.publishApiKeys,
      maxCommandBytes: config.maxCommandBytes,
      deliver: handle,
      isReady,
      logger,
      onResult: (status) => httpPublishes.inc({ status: String(status) }),
    }),
  );

  if (!config.ingest) {
    logger.info("INGEST=off: not consuming the publish queue or stream");
    return;
  }
  // Loaded only when used: a gateway without ingest does not carry the broker clients' code.
  const { startAmqpIngest, startRedisIngest } = await import("../ingest/index.js");
  const common = {
    handle,
    isReady,
    maxCommandBytes: config.maxCommandBytes,
    maxAttempts: config.ingestMaxAttempts,
    consumerName: config.gatewayId,
    logger: logger.child({ component: "ingest" }),
  };
  const consumers: Ingest[] = [];
  if (config.amqpUrl) {
    consumers.push(
      startAmqpIngest({
        ...common,
        url: config.amqpUrl,
        queue: config.ingestAmqpQueue,
        prefetch: config.ingestPrefetch,
        onOutcome: (outcome) => ingested.inc({ path: "amqp", outcome }),
      }),
    );
  }
  if (config.redisUrl && config.redisCluster) {
    // The consumer moves dead letters and acknowledgements in one MULTI over two keys, which a
    // Redis Cluster refuses across hash slots.
    logger.warn(
      { stream: config.ingestRedisStream },
      "Redis stream ingest is not available with REDIS_CLUSTER=on: publish through the RabbitMQ queue or POST /v1/publish",
    );
  } else if (config.redisUrl) {
    consumers.push(
      startRedisIngest({
        ...common,
        url: config.redisUrl,
        stream: config.ingestRedisStream,
        group: config.ingestRedisGroup,
        batchSize: config.ingestPrefetch,
        claimIdleMs: config.ingestClaimIdleMs,
        onOutcome: (outcome) => ingested.inc({ path: "redis", outcome }),
      }),
    );
  }
  // Runs when shutdown starts, while the backplane is still up: commands in hand are delivered
  // and acknowledged, the rest go back to the broker for another gateway.
  gateway.onShutdown(async () => {
    await Promise.all(consumers.map((consumer) => consumer.close()));
  });
}
