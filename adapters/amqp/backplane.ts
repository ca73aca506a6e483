import { setTimeout as delay } from "node:timers/promises";
import amqp, { type ChannelModel } from "amqplib";
import type { Namespace } from "socket.io";
import { ErrorCode, SwitchboardError } from "../errors.js";
import type { AmqpAdapter } from "./adapter.js";
import { createAmqpAdapter } from "./factory.js";
import type { AmqpLogger } from "./options.js";
import { emptyStats, type TransportStats } from "./stats.js";

export interface AmqpBackplaneOptions {
  url: string;
  exchange: string;
  roomRouting: boolean;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  requestsTimeoutMs: number;
  logger?: AmqpLogger;
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
    connectionFactory: () => amqp.connect(options.url),
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
  logger?: AmqpLogger,
): Promise<ChannelModel> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await amqp.connect(url);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (Date.now() + 500 > deadline) {
        throw new SwitchboardError(
          ErrorCode.BROKER_CONNECTION,
          `cannot connect to AMQP_URL ${redactUrl(url)} within ${timeoutMs} ms: ${reason}`,
        );
      }
      logger?.warn({ attempt, reason }, "AMQP broker not reachable yet; retrying");
      await delay(Math.min(250 * 2 ** attempt, 5000, Math.max(0, deadline - Date.now())));
    }
  }
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(unparsable URL)";
  }
}
