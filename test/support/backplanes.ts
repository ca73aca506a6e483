import { randomUUID } from "node:crypto";
import { amqpUrl } from "./brokers.js";
import { startPrivateRedisCluster } from "./redis-cluster.js";
import { startPrivateRedis } from "./redis-server.js";

/** Every case of the conformance suite (test/conformance), by id. */
export const CONFORMANCE_CASES = [
  "emit-all",
  "emit-room",
  "emit-rooms",
  "emit-except",
  "emit-socket-id",
  "emit-local",
  "emit-volatile",
  "emit-binary",
  "namespaces",
  "fetch-sockets",
  "sockets-join",
  "sockets-leave",
  "disconnect-sockets",
  "server-side-emit",
  "server-side-emit-with-ack",
  "server-side-emit-listener-throws",
  "broadcast-with-ack",
  "server-count",
  "server-count-after-kill",
  "request-to-dead-node",
  "client-protocol",
  "delivery-paths",
] as const;
export type ConformanceCase = (typeof CONFORMANCE_CASES)[number];

/** Cases that only mean something with more than one process. */
export const MULTI_PROCESS_CASES: readonly ConformanceCase[] = [
  "server-side-emit",
  "server-side-emit-with-ack",
  "server-side-emit-listener-throws",
  "server-count-after-kill",
  "request-to-dead-node",
];

/** What a backplane needs while a suite runs: gateway environment and its teardown. */
export interface BackplaneEnvironment {
  env: Record<string, string>;
  /** Idempotent. */
  stop(): Promise<void>;
}

/** How the conformance suite runs one backplane. */
export interface BackplaneDescription {
  /** Short id ([A-Za-z0-9-]): suite titles and gateway ids use it. */
  name: string;
  /**
   * `processes`: 3 separate gateway processes; `cluster`: 3 workers of one node:cluster primary;
   * `single`: one process (only single-process cases apply).
   */
  topology: "processes" | "cluster" | "single";
  /** Starts what the backplane needs (e.g. a private broker) and gives the gateways' env. */
  setup(): Promise<BackplaneEnvironment>;
  /**
   * Cases this backplane cannot support, each with the reason. The suite registers them as
   * skipped with the reason in the name; a single-process backplane must list every
   * MULTI_PROCESS_CASES entry here, or the suite refuses to register.
   */
  notApplicable: Partial<Record<ConformanceCase, string>>;
  /**
   * With connection state recovery, Socket.IO appends each broadcast's offset to the event's
   * arguments (the client keeps it to resume; listeners see it too). The suite drops a last
   * argument matching this pattern before comparing what clients received.
   */
  recoveryOffset?: RegExp;
}

/**
 * Small liveness settings so that the suite sees a dead node quickly: the heartbeat adapters
 * (cluster, redis-streams, amqp) drop a node after HEARTBEAT_TIMEOUT_MS; the redis pub/sub adapter
 * gives up on a request after REQUESTS_TIMEOUT_MS.
 */
export const SUITE_ENV: Record<string, string> = {
  HEARTBEAT_INTERVAL_MS: "500",
  HEARTBEAT_TIMEOUT_MS: "1500",
  REQUESTS_TIMEOUT_MS: "2000",
  INGEST: "off",
  LOG_LEVEL: "warn",
};

const noBroker = (env: Record<string, string>) => async (): Promise<BackplaneEnvironment> => ({
  env: { ...SUITE_ENV, ...env },
  stop: async () => {},
});

/**
 * Each Redis suite gets a private redis-server: the official adapters use fixed channel and
 * stream names ("socket.io…", kept so that @socket.io/redis-emitter works), so two suites on one
 * Redis would see each other's nodes in serverCount, fetchSockets and broadcasts.
 */
const privateRedis = (backplane: string) => async (): Promise<BackplaneEnvironment> => {
  const redis = await startPrivateRedis();
  return {
    env: { ...SUITE_ENV, BACKPLANE: backplane, REDIS_URL: redis.url },
    stop: redis.stop,
  };
};

const ONE_PROCESS = "memory is one process: there is no other server to reach or to lose";

export const backplanes = {
  memory: {
    name: "memory",
    topology: "single",
    setup: noBroker({ BACKPLANE: "memory" }),
    notApplicable: {
      "server-side-emit": ONE_PROCESS,
      "server-side-emit-with-ack": `${ONE_PROCESS} (the in-memory adapter never acks serverSideEmit)`,
      "server-side-emit-listener-throws": ONE_PROCESS,
      "server-count-after-kill": ONE_PROCESS,
      "request-to-dead-node": ONE_PROCESS,
    },
  },
  cluster: {
    name: "cluster",
    topology: "cluster",
    setup: noBroker({}),
    notApplicable: {},
  },
  redis: {
    name: "redis",
    topology: "processes",
    setup: privateRedis("redis"),
    notApplicable: {},
  },
  "redis-sharded": {
    name: "redis-sharded",
    topology: "processes",
    setup: privateRedis("redis-sharded"),
    notApplicable: {},
  },
  /** Sharded pub/sub where it matters: a private 3-master Redis Cluster (channels spread over shards). */
  "redis-sharded-cluster": {
    name: "redis-sharded-cluster",
    topology: "processes",
    setup: async () => {
      const cluster = await startPrivateRedisCluster({ masters: 3 });
      return {
        env: {
          ...SUITE_ENV,
          BACKPLANE: "redis-sharded",
          REDIS_CLUSTER: "on",
          REDIS_URL: cluster.urls[0] as string,
        },
        stop: cluster.stop,
      };
    },
    notApplicable: {},
  },
  "redis-streams": {
    name: "redis-streams",
    topology: "processes",
    setup: privateRedis("redis-streams"),
    notApplicable: {},
    recoveryOffset: /^\d+-\d+$/, // a Redis stream entry id
  },
  /** Shared RabbitMQ; an exchange of its own keeps suites apart. */
  amqp: {
    name: "amqp",
    topology: "processes",
    setup: async () => ({
      env: {
        ...SUITE_ENV,
        BACKPLANE: "amqp",
        AMQP_URL: await amqpUrl(),
        AMQP_EXCHANGE: `conformance.${randomUUID()}`,
      },
      stop: async () => {},
    }),
    notApplicable: {},
  },
} as const satisfies Record<string, BackplaneDescription>;
