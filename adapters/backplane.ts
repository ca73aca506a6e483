import { createRequire } from "node:module";
import type { Namespace, ServerOptions } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../core/errors.js";
import { type Logger, stderrLogger } from "../core/logger.js";
import { guardServerSideEmit } from "./server-side-emit.js";

/** The values of `BACKPLANE`, each a way to carry traffic between gateways. */
export const BACKPLANES = [
  "memory",
  "cluster",
  "redis",
  "redis-sharded",
  "redis-streams",
  "amqp",
] as const;
export type BackplaneKind = (typeof BACKPLANES)[number];

/**
 * The seam between a gateway and whatever carries its traffic to the other gateways:
 * `BACKPLANE` -> Socket.IO adapter factory, health and close.
 */
export interface Backplane {
  readonly kind: BackplaneKind;
  /** The Socket.IO `adapter` option; undefined means the default in-memory adapter. */
  readonly adapter: ((nsp: Namespace) => Adapter) | undefined;
  /** Server options the backplane depends on (e.g. connection state recovery for streams). */
  readonly serverOptions: Partial<ServerOptions>;
  /** True while cross-process traffic can flow; /readyz reports it. */
  isConnected(): boolean;
  /** Counters of the backplane's own traffic, exported as `switchboard_backplane_*` metrics. */
  stats?(): BackplaneStats | undefined;
  /** Keys of `stats()` that are current values (gauges), not totals since start. */
  readonly statsGauges?: readonly string[];
  /** Idempotent; call after the Socket.IO server has closed its adapters. */
  close(): Promise<void>;
}

/** Numeric counters by name (non-numeric fields are ignored by the metrics exporter). */
export type BackplaneStats = object;

/**
 * What the seam needs to build a backplane. The gateway's `Config` has these fields (from BACKPLANE,
 * REDIS_URL, …); a Socket.IO application can pass its own.
 */
export interface BackplaneOptions {
  backplane: BackplaneKind;
  /** Required for the redis kinds. */
  redisUrl?: string | undefined;
  /** `redisUrl` names one node of a Redis Cluster. */
  redisCluster: boolean;
  /** Required for `amqp`. */
  amqpUrl?: string | undefined;
  amqpExchange: string;
  amqpRoomRouting: boolean;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  requestsTimeoutMs: number;
}

export async function createBackplane(
  config: BackplaneOptions,
  logger?: Logger,
): Promise<Backplane> {
  const heartbeat = {
    heartbeatInterval: config.heartbeatIntervalMs,
    heartbeatTimeout: config.heartbeatTimeoutMs,
  };
  switch (config.backplane) {
    case "memory":
      return {
        kind: "memory",
        adapter: undefined,
        serverOptions: {},
        isConnected: () => true,
        close: async () => {},
      };
    case "cluster":
      return {
        kind: "cluster",
        // CommonJS, so loaded with require: see "What a gateway loads at start" in ARCHITECTURE.md.
        adapter: guarded(
          (
            createRequire(import.meta.url)(
              "@socket.io/cluster-adapter",
            ) as typeof import("@socket.io/cluster-adapter")
          ).createAdapter(heartbeat) as unknown as (nsp: Namespace) => Adapter,
          logger,
        ),
        serverOptions: {},
        // The primary relays all cluster traffic; the IPC channel to it is the backplane.
        isConnected: () => process.connected === true,
        close: async () => {},
      };
    case "redis":
    case "redis-sharded":
    case "redis-streams": {
      const { createRedisBackplane } = await import("./redis/index.js");
      const redis = createRedisBackplane(config.backplane, {
        url: requireUrl(config.redisUrl, "REDIS_URL", config.backplane),
        cluster: config.redisCluster,
        requestsTimeoutMs: config.requestsTimeoutMs,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        heartbeatTimeoutMs: config.heartbeatTimeoutMs,
        logger,
      });
      // Bounded: a gateway whose Redis is down still starts, local-only and not ready.
      if (!(await redis.whenReady(10_000))) {
        logger?.warn(
          { backplane: config.backplane },
          "Redis not ready after 10 s; starting anyway",
        );
      }
      return {
        kind: config.backplane,
        adapter: guarded(redis.adapter, logger),
        serverOptions:
          config.backplane === "redis-streams"
            ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000 } }
            : {},
        isConnected: redis.isConnected,
        stats: redis.stats,
        close: redis.close,
      };
    }
    case "amqp": {
      const { createAmqpBackplane } = await import("./amqp/backplane.js");
      const amqp = await createAmqpBackplane({
        url: requireUrl(config.amqpUrl, "AMQP_URL", "amqp"),
        exchange: config.amqpExchange,
        roomRouting: config.amqpRoomRouting,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        heartbeatTimeoutMs: config.heartbeatTimeoutMs,
        requestsTimeoutMs: config.requestsTimeoutMs,
        logger,
      });
      return {
        kind: "amqp",
        adapter: guarded(amqp.adapter as unknown as (nsp: Namespace) => Adapter, logger),
        serverOptions: {},
        isConnected: amqp.isConnected,
        stats: amqp.stats,
        // Room keys bound right now (room routing), unlike the other counters.
        statsGauges: ["bindings"],
        close: amqp.close,
      };
    }
  }
}

/** The adapter factory, with every namespace's serverSideEmit listeners guarded (server-side-emit.ts). */
function guarded(
  factory: (nsp: Namespace) => Adapter,
  logger: Logger | undefined,
): (nsp: Namespace) => Adapter {
  const log = logger ?? stderrLogger("switchboard backplane");
  // A function, not an arrow: Socket.IO calls the adapter option with `new`.
  return function adapter(nsp: Namespace) {
    guardServerSideEmit(nsp, log);
    return factory(nsp);
  };
}

function requireUrl(value: string | undefined, name: string, kind: string): string {
  if (!value) {
    throw new SwitchboardError(
      ErrorCode.INVALID_ARGUMENT,
      `${name} is required when BACKPLANE=${kind}`,
    );
  }
  return value;
}
