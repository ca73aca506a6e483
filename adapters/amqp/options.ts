import type { ChannelModel } from "amqplib";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { isLogger, type Logger, stderrLogger } from "../../core/logger.js";
import { bool, invalidOption as invalid, positiveInt } from "../../core/validate.js";

/** pino-compatible: `logger.warn({ fields }, "message")`. The name is kept for the public export. */
export type AmqpLogger = Logger;

/** Options shared by the adapter's transport and the emitter. */
export interface AmqpTransportOptions {
  /**
   * Topic exchange shared by every node of one cluster (and its emitters).
   * @default "socket.io"
   */
  exchange?: string;
  /**
   * Called for a full reconnection when the connection passed to the factory
   * is lost. Connections it returns are owned (and closed) by Switchboard.
   * Without it, a lost connection leaves the adapter local-only: it logs,
   * reports `SWB_ERR_BROKER_CONNECTION` to `onError` and drops publishes.
   * A lost channel on a live connection is always recovered.
   * @default undefined
   */
  connectionFactory?: () => Promise<ChannelModel>;
  /**
   * First reconnect delay in milliseconds; doubles per attempt, with jitter.
   * @default 200
   */
  reconnectMinDelayMs?: number;
  /**
   * Upper bound of the reconnect delay in milliseconds.
   * @default 10_000
   */
  reconnectMaxDelayMs?: number;
  /**
   * How long, in milliseconds, a publish may wait for the first setup or for
   * `drain` (back-pressure) before it is dropped and counted.
   * @default 5_000
   */
  publishTimeoutMs?: number;
  /**
   * Publishes that may wait (count) for setup or `drain`; more are dropped and
   * counted, so memory stays bounded when the broker is slow.
   * @default 1_000
   */
  maxPendingPublishes?: number;
  /**
   * Receives structured log lines (pino works as is).
   * @default warnings and errors on stderr
   */
  logger?: AmqpLogger;
  /**
   * Background errors (connection lost, reconnect failed); never thrown.
   * @default undefined
   */
  onError?: (error: SwitchboardError) => void;
}

export interface AmqpAdapterOptions extends AmqpTransportOptions {
  /**
   * Room-aware routing: bind a room's key only while this node has a local
   * member, so a node receives only the traffic of rooms it serves.
   *
   * Off (the default), every node receives every room message (fan-out), and
   * a socket receives broadcasts to a room from any node as soon as
   * `socket.join(room)` has been called, awaited or not, exactly as with
   * @socket.io/redis-adapter.
   *
   * On, a broadcast from another node reaches a newly joined socket only once
   * the promise returned by `socket.join(room)` has resolved (the binding
   * exists): code that emits from another node right after an unawaited
   * `join` can miss that emit. Use it where joins are awaited (the Switchboard
   * gateway acknowledges a client's `join` only then) and traffic per room
   * matters more than that window. Both modes interoperate in one cluster.
   * @default false
   */
  roomRouting?: boolean;
  /**
   * Milliseconds between two heartbeats of an idle node.
   * @default 5_000
   */
  heartbeatIntervalMs?: number;
  /**
   * Milliseconds without any message after which a node counts as gone (it
   * leaves `serverCount()` and pending requests stop waiting for it).
   * @default 10_000
   */
  heartbeatTimeoutMs?: number;
  /**
   * Milliseconds `fetchSockets()` (without its own timeout flag) and
   * `serverSideEmitWithAck()` wait for every other node.
   * @default 5_000
   */
  requestsTimeoutMs?: number;
  /**
   * On a request timeout, resolve with the answers that arrived and log and
   * count the missing node ids, instead of rejecting with
   * `SWB_ERR_REQUEST_TIMEOUT`.
   * @default false
   */
  partialResults?: boolean;
}

export type ResolvedTransportOptions = Required<
  Omit<AmqpTransportOptions, "connectionFactory" | "onError">
> &
  Pick<AmqpTransportOptions, "connectionFactory" | "onError">;
export type ResolvedAdapterOptions = ResolvedTransportOptions &
  Required<
    Pick<
      AmqpAdapterOptions,
      | "roomRouting"
      | "heartbeatIntervalMs"
      | "heartbeatTimeoutMs"
      | "requestsTimeoutMs"
      | "partialResults"
    >
  >;

const defaultLogger = stderrLogger("amqp");

export function resolveTransportOptions(opts: AmqpTransportOptions = {}): ResolvedTransportOptions {
  if (typeof opts !== "object" || opts === null) throw invalid("options", "an object", opts);
  const exchange = opts.exchange ?? "socket.io";
  if (typeof exchange !== "string" || exchange.length === 0 || Buffer.byteLength(exchange) > 255) {
    throw invalid("exchange", "a non-empty string of at most 255 bytes", exchange);
  }
  if (opts.connectionFactory !== undefined && typeof opts.connectionFactory !== "function") {
    throw invalid("connectionFactory", "a function", opts.connectionFactory);
  }
  if (opts.onError !== undefined && typeof opts.onError !== "function")
    throw invalid("onError", "a function", opts.onError);
  const logger = opts.logger ?? defaultLogger;
  if (!isLogger(logger))
    throw invalid("logger", "an object with debug/info/warn/error methods", logger);
  const reconnectMinDelayMs = positiveInt(opts.reconnectMinDelayMs, "reconnectMinDelayMs", 200);
  const reconnectMaxDelayMs = positiveInt(opts.reconnectMaxDelayMs, "reconnectMaxDelayMs", 10_000);
  if (reconnectMaxDelayMs < reconnectMinDelayMs) {
    throw invalid(
      "reconnectMaxDelayMs",
      `>= reconnectMinDelayMs (${reconnectMinDelayMs})`,
      reconnectMaxDelayMs,
    );
  }
  return {
    exchange,
    connectionFactory: opts.connectionFactory,
    onError: opts.onError,
    logger,
    reconnectMinDelayMs,
    reconnectMaxDelayMs,
    publishTimeoutMs: positiveInt(opts.publishTimeoutMs, "publishTimeoutMs", 5_000),
    maxPendingPublishes: positiveInt(opts.maxPendingPublishes, "maxPendingPublishes", 1_000),
  };
}

export function resolveAdapterOptions(opts: AmqpAdapterOptions = {}): ResolvedAdapterOptions {
  const base = resolveTransportOptions(opts);
  const heartbeatIntervalMs = positiveInt(opts.heartbeatIntervalMs, "heartbeatIntervalMs", 5_000);
  const heartbeatTimeoutMs = positiveInt(opts.heartbeatTimeoutMs, "heartbeatTimeoutMs", 10_000);
  if (heartbeatTimeoutMs <= heartbeatIntervalMs) {
    throw invalid(
      "heartbeatTimeoutMs",
      `> heartbeatIntervalMs (${heartbeatIntervalMs})`,
      heartbeatTimeoutMs,
    );
  }
  return {
    ...base,
    roomRouting: bool(opts.roomRouting, "roomRouting", false),
    partialResults: bool(opts.partialResults, "partialResults", false),
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    requestsTimeoutMs: positiveInt(opts.requestsTimeoutMs, "requestsTimeoutMs", 5_000),
  };
}

/** Checks the factory's first argument looks like an amqplib ChannelModel. */
export function assertConnection(connection: unknown): asserts connection is ChannelModel {
  const c = connection as Partial<ChannelModel> | null | undefined;
  if (
    typeof c !== "object" ||
    c === null ||
    typeof c.createChannel !== "function" ||
    typeof c.on !== "function"
  ) {
    throw new SwitchboardError(
      ErrorCode.INVALID_ARGUMENT,
      'argument "connection" must be an amqplib connection (what amqplib.connect(url) resolves to)',
    );
  }
}
