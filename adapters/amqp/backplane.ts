import type { ChannelModel } from "amqplib";
import type { Namespace } from "socket.io";
import { ErrorCode, errorMessage, SwitchboardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { redactUrl } from "../../core/redact.js";
import { backoffDelay, pause } from "../../core/retry.js";
import type { AmqpAdapter } from "./adapter.js";
import { amqplib as amqp } from "./cjs.js";
import { createAmqpAdapter } from "./factory.js";
import { emptyStats, type TransportStats } from "./stats.js";

export interface AmqpBackplaneOptions {
  url: string;
  exchange: string;
  roomRouting: boolean;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  requestsTimeoutMs: number;
  logger?: Logger;
  /** How long start-up keeps trying to reach the broker, in ms. @default 30000 */
  connectTimeoutMs?: number;
}

export interface AmqpBackplane {
  adapter: (nsp: Namespace) => AmqpAdapter;
  isConnected(): boolean;
  stats(): TransportStats;
  close(): Promise<void>;
}

/**
 * amqplib turns Nagle's algorithm on unless told otherwise (it calls `setNoDelay(false)`): a
 * broadcast written while the previous one is not yet acknowledged by the broker's TCP stack
 * would wait for that ACK. ioredis, the other backplanes' client, sends at once by default.
 */
const SOCKET_OPTIONS = { noDelay: true };

/**
 * BACKPLANE=amqp for the gateway: the first connection is retried for a bounded time at start
 * (a broker starting next to the gateway in compose/Kubernetes), later losses are the adapter's
 * business through `connectionFactory`.
 */
export async function createAmqpBackplane(options: AmqpBackplaneOptions): Promise<AmqpBackplane> {
  const connection = await connectWithRetry(
    options.url,
    options.connectTimeoutMs ?? 30_000,
    options.logger,
  );
  const adapters = new Set<AmqpAdapter>();
  const factory = createAmqpAdapter(connection, {
    exchange: options.exchange,
    roomRouting: options.roomRouting,
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs,
    requestsTimeoutMs: options.requestsTimeoutMs,
    connectionFactory: () => amqp.connect(options.url, SOCKET_OPTIONS),
    logger: options.logger,
  });
  let closed = false;
  // A plain function: Socket.IO calls the adapter factory with `new`.
  const adapter = function amqpBackplaneAdapter(nsp: Namespace): AmqpAdapter {
    const created = factory(nsp);
    adapters.add(created);
    return created;
  };
  const first = () => adapters.values().next().value as AmqpAdapter | undefined;
  return {
    adapter,
    isConnected: () => !closed && [...adapters].every((a) => a.connected),
    // All namespaces share one transport: any adapter's counters are the transport's.
    stats: () => first()?.stats() ?? emptyStats(),
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled([...adapters].map((a) => a.close()));
      await connection.close().catch(() => undefined);
    },
  };
}

async function connectWithRetry(
  url: string,
  timeoutMs: number,
  logger?: Logger,
): Promise<ChannelModel> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await amqp.connect(url, SOCKET_OPTIONS);
    } catch (err) {
      if (Date.now() + 500 > deadline) {
        throw new SwitchboardError(
          ErrorCode.BROKER_CONNECTION,
          `cannot connect to AMQP_URL ${redactUrl(url)} within ${timeoutMs} ms: ${errorMessage(err)}`,
          { cause: err },
        );
      }
      logger?.warn({ attempt, err }, "AMQP broker not reachable yet; retrying");
      const wait = backoffDelay(attempt, { initialMs: 250, maxMs: 5000 });
      await pause(Math.min(wait, Math.max(0, deadline - Date.now())));
    }
  }
}
