import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import type { ChannelModel, ConfirmChannel } from "amqplib";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import {
  checkPublishCommand,
  PUBLISH_DEFAULTS,
  type PublishCommand,
} from "../../core/publish-command.js";
import {
  type AmqpPublishTopology,
  declarePublishTopology,
  resolveTopology,
} from "../../core/publish-queue.js";
import { backoffDelay, withTimeout } from "../../core/retry.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const require = createRequire(import.meta.url);
const amqp = require("amqplib") as typeof import("amqplib");
const { Redis } = require("ioredis") as typeof import("ioredis");

export type PublishVia = "amqp" | "redis" | "http";

interface CommonOptions {
  /**
   * Give every command without an `id` a random UUID, so that clients can drop the duplicates
   * an at-least-once path may deliver. @default true
   */
  autoId?: boolean;
  /** Commands larger than this (UTF-8 JSON) are refused before sending. @default 262144 */
  maxCommandBytes?: number;
  /** Bound on one publish, until the broker or gateway confirmed, in ms. @default 10000 */
  timeoutMs?: number;
}

export interface AmqpPublisherOptions extends CommonOptions, AmqpPublishTopology {
  via: "amqp";
  /** `amqp://` or `amqps://` URL. */
  url: string;
}

export interface RedisPublisherOptions extends CommonOptions {
  via: "redis";
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** @default "switchboard:publish" */
  stream?: string;
}

export interface HttpPublisherOptions extends CommonOptions {
  via: "http";
  /** A gateway's base URL (`http://gateway:3000`) or the full `…/v1/publish` URL. */
  url: string;
  /** One of the gateway's PUBLISH_API_KEYS. */
  apiKey: string;
}

export type PublisherOptions = AmqpPublisherOptions | RedisPublisherOptions | HttpPublisherOptions;

/** A command as a publisher writes it: `v` may be left out, `id` is filled in when absent. */
export type PublishInput = Omit<PublishCommand, "v"> & { v?: 1 };

export interface PublishResult {
  /** The command's id (absent only with `autoId: false` and no id given). */
  id: string | undefined;
  via: PublishVia;
}

export interface Publisher {
  /**
   * Validates and sends one command; resolves once the broker confirmed it (AMQP publisher
   * confirm, Redis XADD reply) or the gateway accepted it (HTTP 202). Rejects with a
   * SwitchboardError: SWB_ERR_INVALID_ARGUMENT (bad command; `details.reason`),
   * SWB_ERR_UNAUTHORIZED (HTTP 401), SWB_ERR_BROKER_CONNECTION (unreachable, refused;
   * `details.status` for HTTP),
   * SWB_ERR_PUBLISH_TIMEOUT, SWB_ERR_CLOSED.
   */
  publish(command: PublishInput): Promise<PublishResult>;
  /** Idempotent. */
  close(): Promise<void>;
}

/** How one path (`via`) hands a checked command over: a queue, a stream or an HTTP call. */
interface Sender {
  send(command: PublishCommand, body: string): Promise<void>;
  close(): Promise<void>;
}

/** `createPublisher({via: "amqp", url})`: see docs/PROTOCOL.md for the command and the paths. */
export function createPublisher(options: PublisherOptions): Publisher {
  if (!options || !["amqp", "redis", "http"].includes(options.via)) {
    throw invalid('option "via" must be "amqp", "redis" or "http"');
  }
  if (typeof options.url !== "string" || options.url.length === 0) {
    throw invalid('option "url" is required');
  }
  if (options.via === "http" && !options.apiKey) throw invalid('option "apiKey" is required');
  const maxBytes = options.maxCommandBytes ?? PUBLISH_DEFAULTS.maxCommandBytes;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const sender =
    options.via === "amqp"
      ? amqpSender(options)
      : options.via === "redis"
        ? redisSender(options)
        : httpSender(options, timeoutMs);
  let closed = false;

  return {
    async publish(input) {
      if (closed) throw new SwitchboardError(ErrorCode.CLOSED, "publisher is closed");
      const withDefaults: Record<string, unknown> = { v: 1, ...input };
      if (withDefaults.id === undefined && options.autoId !== false) withDefaults.id = randomUUID();
      const check = checkPublishCommand(withDefaults, { maxBytes });
      if (!check.ok) {
        throw invalid(`invalid publish command: ${check.reason}`, {
          code: check.code,
          reason: check.reason,
        });
      }
      await withTimeout(
        sender.send(check.command, JSON.stringify(check.command)),
        timeoutMs,
        () =>
          new SwitchboardError(
            ErrorCode.PUBLISH_TIMEOUT,
            `no confirmation over ${options.via} within ${timeoutMs} ms`,
          ),
      );
      return { id: check.command.id, via: options.via };
    },
    async close() {
      if (closed) return;
      closed = true;
      await sender.close();
    },
  };
}

function amqpSender(options: AmqpPublisherOptions): Sender {
  const topology = resolveTopology(options);
  let ready: Promise<{ connection: ChannelModel; channel: ConfirmChannel }> | undefined;
  const open = () => {
    ready ??= (async () => {
      const connection = await amqp.connect(options.url).catch((err: unknown) => {
        throw brokerError(`cannot connect to RabbitMQ: ${message(err)}`, err);
      });
      // A lost connection is reopened by the next publish.
      connection.on("error", () => {});
      connection.once("close", () => {
        ready = undefined;
      });
      try {
        // Declared here too, so commands sent before any gateway ran wait in the queue.
        await declarePublishTopology(connection, topology);
        const channel = await connection.createConfirmChannel();
        channel.on("error", () => {});
        channel.once("close", () => void connection.close().catch(() => {}));
        return { connection, channel };
      } catch (err) {
        await connection.close().catch(() => {});
        throw brokerError(`cannot declare queue ${topology.queue}: ${message(err)}`, err);
      }
    })();
    ready.catch(() => {
      ready = undefined;
    });
    return ready;
  };
  return {
    async send(command, body) {
      const { channel } = await open();
      await new Promise<void>((resolve, reject) => {
        channel.sendToQueue(
          topology.queue,
          Buffer.from(body),
          {
            persistent: true,
            contentType: "application/json",
            ...(command.id === undefined ? {} : { messageId: command.id }),
          },
          (err: unknown) =>
            err
              ? reject(brokerError(`RabbitMQ refused the command: ${message(err)}`, err))
              : resolve(),
        );
      });
    },
    async close() {
      const current = ready;
      ready = undefined;
      if (!current) return;
      const { connection } = await current.catch(() => ({ connection: undefined }));
      await connection?.close().catch(() => {});
    },
  };
}

function redisSender(options: RedisPublisherOptions): Sender {
  const stream = options.stream ?? PUBLISH_DEFAULTS.redisStream;
  const redis = new Redis(options.url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => backoffDelay(attempt, { initialMs: 100, maxMs: 2000 }),
  });
  let lastError: unknown;
  redis.on("error", (err) => {
    lastError = err;
  });
  return {
    async send(_command, body) {
      try {
        await redis.xadd(stream, "*", "command", body);
      } catch (err) {
        throw brokerError(
          `cannot add to Redis stream ${stream}: ${message(lastError ?? err)}`,
          err,
        );
      }
    },
    async close() {
      await redis.quit().catch(() => {});
      redis.disconnect();
    },
  };
}

function httpSender(options: HttpPublisherOptions, timeoutMs: number): Sender {
  const url = new URL(options.url);
  if (!url.pathname.endsWith("/v1/publish")) {
    url.pathname = `${url.pathname.replace(/\/$/, "")}/v1/publish`;
  }
  return {
    async send(_command, body) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${options.apiKey}`,
          },
          body,
          signal: AbortSignal.timeout(timeoutMs),
        });
      } catch (err) {
        throw brokerError(`cannot reach ${url.origin}: ${message(err)}`, err);
      }
      if (res.status === 202) {
        await res.body?.cancel();
        return;
      }
      const text = await res.text().catch(() => "");
      let reason = text;
      try {
        const parsed = JSON.parse(text) as { error?: string; reason?: string };
        reason = [parsed.error, parsed.reason].filter(Boolean).join(": ");
      } catch {}
      const details = { status: res.status, reason };
      if (res.status === 400 || res.status === 413) {
        throw invalid(`the gateway refused the command (${res.status}): ${reason}`, details);
      }
      if (res.status === 401) {
        throw new SwitchboardError(
          ErrorCode.UNAUTHORIZED,
          "the gateway refused the API key (401)",
          {
            details,
          },
        );
      }
      throw new SwitchboardError(
        ErrorCode.BROKER_CONNECTION,
        `the gateway answered ${res.status}: ${reason}`,
        { details },
      );
    },
    async close() {},
  };
}

function invalid(text: string, details?: Record<string, unknown>): SwitchboardError {
  return new SwitchboardError(ErrorCode.INVALID_ARGUMENT, text, { details });
}

function brokerError(text: string, cause: unknown): SwitchboardError {
  return new SwitchboardError(ErrorCode.BROKER_CONNECTION, text, { cause });
}

function message(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return message(err.errors[0]);
  // fetch() says only "fetch failed"; the cause names the network error.
  if (err instanceof Error && err.cause instanceof Error)
    return `${err.message} (${message(err.cause)})`;
  if (err instanceof Error) return err.message || err.name;
  return String(err);
}
