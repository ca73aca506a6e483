import { Counter, Gauge, type Registry } from "prom-client";
import type { Server } from "socket.io";
import type { Logger } from "../../core/logger.js";
import { applyLocally } from "./apply.js";
import { openPythonChannel, type PythonChannel } from "./channel.js";
import { decodeMessage, type JsonDataRule, MessageRejected } from "./message.js";
import { encodeEmit, type OutgoingEmit, SWITCHBOARD_HOST_ID } from "./outgoing.js";

export type BridgeMode = "in" | "both";

export interface BridgeOptions {
  io: Server;
  /** `amqp://`, `amqps://` (kombu), `redis://`, `rediss://` (RedisManager). */
  url: string;
  /** Exchange or pub/sub channel: Flask-SocketIO's default is `flask-socketio`. */
  channel: string;
  /** `in`: deliver what Python publishes; `both`: also publish Switchboard's own broadcasts. */
  mode: BridgeMode;
  /** How `data` of JSON messages is read and written; pickles describe themselves. */
  jsonData: JsonDataRule;
  /** Largest message accepted, in bytes. */
  maxMessageBytes: number;
  /** Deepest nesting accepted in a message. */
  maxDepth: number;
  /** Most values (scalars and containers) in one message. */
  maxItems: number;
  logger: Logger;
  /** Where the bridge's metrics go (the gateway's registry). */
  registry: Registry;
}

export interface Bridge {
  /** Migration mode: puts one of Switchboard's own broadcasts on the channel (no-op in `in`). */
  mirror(emit: OutgoingEmit): void;
  isConnected(): boolean;
  close(): Promise<void>;
}

/** Rejections logged per window, so a flood of bad messages cannot flood the logs. */
const LOG_BURST = 20;
const LOG_WINDOW_MS = 10_000;

/**
 * The Python bridge of one gateway: reads python-socketio / Flask-SocketIO message-queue traffic
 * on its own subscription and carries it out on this gateway's sockets (see `applyLocally`).
 * A bad message never stops it: it is counted (`result="rejected"`), logged with its reason, and
 * dropped; nothing in it is ever evaluated.
 */
export async function startBridge(options: BridgeOptions): Promise<Bridge> {
  const { io, logger } = options;
  const messages = new Counter({
    name: "switchboard_bridge_messages_total",
    help: "python-socketio queue messages, by format (pickle, json), method and result (delivered, delivered_without_callback, own, ignored, rejected; published, dropped for migration mode)",
    labelNames: ["format", "method", "result"],
    registers: [options.registry],
  });
  let channel: PythonChannel | undefined;
  new Gauge({
    name: "switchboard_bridge_connected",
    help: "1 while the Python bridge is subscribed to its channel",
    registers: [options.registry],
    collect() {
      this.set(channel?.isConnected() ? 1 : 0);
    },
  });
  const decodeOptions = {
    maxBytes: options.maxMessageBytes,
    maxDepth: options.maxDepth,
    maxItems: options.maxItems,
    jsonData: options.jsonData,
  };
  let logged = 0;
  let suppressed = 0;
  let windowStart = Date.now();
  const logRejection = (err: MessageRejected) => {
    const now = Date.now();
    if (now - windowStart > LOG_WINDOW_MS) {
      if (suppressed > 0)
        logger.warn({ suppressed }, "bridge: more messages rejected (not logged)");
      windowStart = now;
      logged = 0;
      suppressed = 0;
    }
    if (logged++ < LOG_BURST) {
      logger.warn(
        { reason: err.reason, format: err.format, method: err.method },
        "bridge: message rejected",
      );
    } else suppressed++;
  };
  let warnedCallback = false;

  const onMessage = (body: Buffer) => {
    let decoded: ReturnType<typeof decodeMessage>;
    try {
      decoded = decodeMessage(body, decodeOptions);
    } catch (err) {
      if (!(err instanceof MessageRejected)) {
        logger.error({ err }, "bridge: message decoding failed");
        messages.inc({ format: "unknown", method: "unknown", result: "rejected" });
        return;
      }
      messages.inc({ format: err.format, method: err.method, result: "rejected" });
      logRejection(err);
      return;
    }
    const { format, message } = decoded;
    const count = (result: string) => messages.inc({ format, method: message.method, result });
    if (message.hostId === SWITCHBOARD_HOST_ID) return count("own");
    if (message.method === "callback") return count("ignored");
    try {
      applyLocally(io, message);
    } catch (err) {
      logger.error({ err, method: message.method }, "bridge: message could not be carried out");
      return count("rejected");
    }
    if (message.method === "emit" && message.wantsCallback) {
      if (!warnedCallback) {
        warnedCallback = true;
        logger.warn(
          { event: message.event },
          "bridge: an emit asked for a client acknowledgement; Switchboard clients' acks do not go back to Python (delivered without)",
        );
      }
      return count("delivered_without_callback");
    }
    count("delivered");
  };

  const opened = await openPythonChannel({
    url: options.url,
    channel: options.channel,
    onMessage,
    logger,
  });
  channel = opened;

  return {
    mirror(emit) {
      if (options.mode !== "both") return;
      let body: string;
      try {
        body = encodeEmit(emit, options.jsonData);
      } catch (err) {
        logger.warn(
          { err, event: emit.event },
          "bridge: broadcast could not be encoded for Python",
        );
        messages.inc({ format: "json", method: "emit", result: "dropped" });
        return;
      }
      const ok = opened.publish(body);
      messages.inc({ format: "json", method: "emit", result: ok ? "published" : "dropped" });
    },
    isConnected: () => opened.isConnected(),
    close: () => opened.close(),
  };
}
