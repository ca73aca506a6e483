import { hostname } from "node:os";
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { checkPublishCommand } from "../gateway/publish-command.js";
import {
  type AmqpPublishTopology,
  declarePublishTopology,
  resolveTopology,
} from "./amqp-topology.js";
import {
  backoff,
  DEFAULT_MAX_COMMAND_BYTES,
  errorMessage,
  type Ingest,
  type IngestOptions,
  pause,
  silentLogger,
} from "./types.js";

export interface AmqpIngestOptions extends IngestOptions, AmqpPublishTopology {
  /** `amqp://` or `amqps://` URL of the broker. */
  url: string;
  /** Commands in flight (unacknowledged) at once: the channel's prefetch. @default 100 */
  prefetch?: number;
}

/** Headers a dead letter carries, beside the publisher's own. */
export const DEAD_LETTER_HEADERS = {
  reason: "x-switchboard-error",
  code: "x-switchboard-error-code",
  consumer: "x-switchboard-consumer",
} as const;

const READY_POLL_MS = 250;

/**
 * Consumes the RabbitMQ publish queue and hands each command to `handle`, in queue order, one at
 * a time. A command is acknowledged only after `handle` returned; a bad command is published to
 * the dead-letter queue with its reason (header `x-switchboard-error`), confirmed, then
 * acknowledged, so it never comes back. A failed `handle` is requeued, and dead-lettered at the
 * `maxAttempts`-th attempt. Connection loss: reconnects with backoff, and the broker requeues
 * what this consumer had not acknowledged.
 */
export function startAmqpIngest(options: AmqpIngestOptions): Ingest {
  const topology = resolveTopology(options);
  const logger = options.logger ?? silentLogger;
  const isReady = options.isReady ?? (() => true);
  const maxBytes = options.maxCommandBytes ?? DEFAULT_MAX_COMMAND_BYTES;
  const prefetch = options.prefetch ?? 100;
  const name = options.consumerName ?? `${hostname()}:${process.pid}`;
  const log = { queue: topology.queue };
  const stop = new AbortController();
  let connection: ChannelModel | undefined;
  let inFlight: Promise<void> = Promise.resolve();

  const deadLetter = (channel: ConfirmChannel, msg: ConsumeMessage, code: string, reason: string) =>
    new Promise<void>((resolve, reject) => {
      channel.sendToQueue(
        topology.deadQueue,
        msg.content,
        {
          // Not expiration (a dead letter should stay) nor userId (checked against our login).
          contentType: msg.properties.contentType,
          contentEncoding: msg.properties.contentEncoding,
          messageId: msg.properties.messageId,
          correlationId: msg.properties.correlationId,
          timestamp: msg.properties.timestamp,
          type: msg.properties.type,
          appId: msg.properties.appId,
          persistent: true,
          headers: {
            ...msg.properties.headers,
            [DEAD_LETTER_HEADERS.reason]: reason,
            [DEAD_LETTER_HEADERS.code]: code,
            [DEAD_LETTER_HEADERS.consumer]: name,
          },
        },
        (err) => (err ? reject(err) : resolve()),
      );
    }).then(() => {
      logger.warn({ ...log, code, reason, messageId: msg.properties.messageId }, "dead letter");
      options.onOutcome?.("dead");
    });

  const handleMessage = async (
    current: ChannelModel,
    channel: ConfirmChannel,
    msg: ConsumeMessage,
  ): Promise<void> => {
    if (stop.signal.aborted || connection !== current) return; // requeued when the connection closes
    const check = checkPublishCommand(msg.content, { maxBytes });
    if (!check.ok) {
      await deadLetter(channel, msg, check.code, check.reason);
      channel.ack(msg);
      return;
    }
    if (!isReady()) {
      // Stop taking commands: closing requeues them, and with a single active consumer the next
      // gateway in line gets them in order.
      logger.warn(log, "ingest paused: gateway not ready");
      connection = undefined;
      await current.close().catch(() => {});
      return;
    }
    // Quorum queues count deliveries in x-delivery-count (absent on the first one).
    const attempt = Number(msg.properties.headers?.["x-delivery-count"] ?? 0) + 1;
    try {
      await options.handle(check.command);
    } catch (err) {
      if (attempt >= topology.maxAttempts) {
        await deadLetter(channel, msg, "failed", `failed ${attempt} times: ${errorMessage(err)}`);
        channel.ack(msg);
      } else {
        logger.warn({ ...log, err, attempt }, "command failed: requeued");
        options.onOutcome?.("retried");
        channel.nack(msg, false, true);
      }
      return;
    }
    channel.ack(msg);
    options.onOutcome?.("delivered");
  };

  /** One connection's life: resolves when it closes (broker gone, paused, or stopped). */
  const session = async (): Promise<void> => {
    const current = await amqp.connect(options.url, {
      clientProperties: { connection_name: `switchboard ingest ${name}` },
    });
    connection = current;
    const closed = new Promise<void>((resolve) => current.once("close", () => resolve()));
    current.on("error", (err: Error) => logger.warn({ ...log, err }, "ingest connection error"));
    try {
      await declarePublishTopology(current, topology, (queue, err) =>
        logger.warn({ queue, err }, "queue exists with other arguments: using it as it is"),
      );
      const channel = await current.createConfirmChannel();
      channel.on("error", (err: Error) => logger.warn({ ...log, err }, "ingest channel error"));
      // Without its channel a connection consumes nothing: end the session and start over.
      channel.on("close", () => void current.close().catch(() => {}));
      await channel.prefetch(prefetch);
      await channel.consume(
        topology.queue,
        (msg) => {
          if (msg === null) {
            logger.warn(log, "consumer cancelled by the broker");
            void current.close().catch(() => {});
            return;
          }
          inFlight = inFlight
            .then(() => handleMessage(current, channel, msg))
            .catch((err: unknown) => {
              // The channel went away mid-command: the broker requeues it.
              logger.debug({ ...log, err }, "command left unacknowledged");
            });
        },
        { noAck: false, consumerTag: `${name}:${Date.now()}` },
      );
      logger.info({ ...log, prefetch }, "ingest consuming (single active consumer)");
    } catch (err) {
      await current.close().catch(() => {});
      throw err;
    }
    await closed;
  };

  const loop = (async () => {
    const delays = backoff(500, 10_000);
    while (!stop.signal.aborted) {
      if (!isReady()) {
        await pause(READY_POLL_MS, stop.signal);
        continue;
      }
      const started = Date.now();
      try {
        await session();
      } catch (err) {
        logger.warn({ ...log, err }, "ingest could not consume");
      }
      if (stop.signal.aborted) break;
      if (Date.now() - started > 30_000) delays.reset();
      await pause(delays.next(), stop.signal);
    }
  })();

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        stop.abort();
        await inFlight;
        const current = connection;
        connection = undefined;
        await current?.close().catch(() => {});
        await loop;
      })();
      return closing;
    },
  };
}
