import { createAdapter as createClusterAdapter } from "@socket.io/cluster-adapter";
import type { Namespace, ServerOptions } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import type { BackplaneKind, Config } from "../services/gateway/config.js";
import { createRedisBackplane } from "./redis/index.js";

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
  /** Idempotent; call after the Socket.IO server has closed its adapters. */
  close(): Promise<void>;
}

export type BackplaneConfig = Pick<
  Config,
  | "backplane"
  | "redisUrl"
  | "amqpUrl"
  | "amqpExchange"
  | "amqpRoomRouting"
  | "heartbeatIntervalMs"
  | "heartbeatTimeoutMs"
  | "requestsTimeoutMs"
>;

export async function createBackplane(config: BackplaneConfig): Promise<Backplane> {
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
        adapter: createClusterAdapter(heartbeat) as unknown as (nsp: Namespace) => Adapter,
        serverOptions: {},
        // The primary relays all cluster traffic; the IPC channel to it is the backplane.
        isConnected: () => process.connected === true,
        close: async () => {},
      };
    case "redis":
    case "redis-sharded":
    case "redis-streams": {
      const redis = createRedisBackplane(config.backplane, {
        url: requireUrl(config.redisUrl, "REDIS_URL", config.backplane),
        requestsTimeoutMs: config.requestsTimeoutMs,
        heartbeatIntervalMs: config.heartbeatIntervalMs,
        heartbeatTimeoutMs: config.heartbeatTimeoutMs,
      });
      return {
        kind: config.backplane,
        adapter: redis.adapter,
        serverOptions:
          config.backplane === "redis-streams"
            ? { connectionStateRecovery: { maxDisconnectionDuration: 2 * 60_000 } }
            : {},
        isConnected: redis.isConnected,
        close: redis.close,
      };
    }
    case "amqp":
      throw new Error("BACKPLANE=amqp is not available in this build yet");
  }
}

function requireUrl(value: string | undefined, name: string, kind: string): string {
  if (!value) throw new Error(`${name} is required when BACKPLANE=${kind}`);
  return value;
}
