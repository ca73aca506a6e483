import { hostname } from "node:os";
import amqp, { type ChannelModel, type ConfirmChannel, type ConsumeMessage } from "amqplib";
import { errorMessage } from "../../core/errors.js";
import { silentLogger } from "../../core/logger.js";
import { checkPublishCommand, PUBLISH_DEFAULTS } from "../../core/publish-command.js";
import {
  type AmqpPublishTopology,
  declarePublishTopology,
  resolveTopology,
} from "../../core/publish-queue.js";
import { backoff, pause } from "../../core/retry.js";
import type { Ingest, IngestOptions } from "./types.js";

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
  const maxBytes = options.maxCommandBytes ?? PUBLISH_DEFAULTS.maxCommandBytes;
  const prefetch = options.prefetch ?? 100;
  const name = options.consumerName ?? `${hostname()}:${process.pid}`;
  const log = { queue: topology.queue };
  const stop = new AbortController();
  let connection: ChannelModel | undefined;
  let inFlight: Promise<void> = Promise.resolve();
  /** Acknowledges what the current channel has handled (before its connection is closed). */
  let flushAcks = () => {};

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

  /**
   * One command, in queue order. Returns a promise only when it has to wait (a dead letter's
   * confirm, an asynchronous `handle`): the common case, a valid command and a synchronous
   * `deliver`, costs no promise at all. `settled` marks a command as done, to be acknowledged.
   */
  const handleMessage = (
    current: ChannelModel,
    channel: ConfirmChannel,
    msg: ConsumeMessage,
    acks: AckBatch,
  ): Promise<void> | undefined => {
    if (stop.signal.aborted || connection !== current) return; // requeued when the connection closes
    const check = checkPublishCommand(msg.content, { maxBytes });
    if (!check.ok) {
      return deadLetter(channel, msg, check.code, check.reason).then(() => acks.settled(msg));
    }
    if (!isReady()) {
      // Stop taking commands: closing requeues them, and with a single active consumer the next
      // gateway in line gets them in order. What was delivered is acknowledged first.
      logger.warn(log, "ingest paused: gateway not ready");
      acks.flush();
      connection = undefined;
      return current.close().catch(() => {});
    }
    // Quorum queues count deliveries in x-delivery-count (absent on the first one).
    const attempt = Number(msg.properties.headers?.["x-delivery-count"] ?? 0) + 1;
    const failed = (err: unknown): Promise<void> | undefined => {
      if (attempt >= topology.maxAttempts) {
        return deadLetter(
          channel,
          msg,
          "failed",
          `failed ${attempt} times: ${errorMessage(err)}`,
        ).then(() => acks.settled(msg));
      }
      logger.warn({ ...log, err, attempt }, "command failed: requeued");
      options.onOutcome?.("retried");
      acks.flush();
      channel.nack(msg, false, true);
      return;
    };
    let handed: void | Promise<void>;
    try {
      handed = options.handle(check.command);
    } catch (err) {
      return failed(err);
    }
    if (handed === undefined || typeof handed.then !== "function") {
      acks.settled(msg);
      options.onOutcome?.("delivered");
      return;
    }
    return handed.then(
      () => {
        acks.settled(msg);
        options.onOutcome?.("delivered");
      },
      (err: unknown) => failed(err),
    );
  };

  /**
   * Takes the channel's deliveries in order: each waits for the one before it. Runs them
   * synchronously while nothing has to wait, so a burst from one socket read is one loop.
   */
  const consumeInOrder = (current: ChannelModel, channel: ConfirmChannel) => {
    const acks = ackBatch(channel, Math.max(1, Math.floor(prefetch / 2)));
    const backlog: ConsumeMessage[] = [];
    let busy = false;
    const drain = async (): Promise<void> => {
      try {
        // At most `prefetch` commands wait here: shift() stays cheap.
        for (let msg = backlog.shift(); msg !== undefined; msg = backlog.shift()) {
          const waiting = handleMessage(current, channel, msg, acks);
          if (waiting !== undefined) await waiting;
        }
        acks.later();
      } catch (err) {
        // The channel failed mid-command (a dead letter refused, a closed channel): acknowledge
        // what was done before it, and start over, so that the broker requeues this command and
        // the ones behind it — a later `multiple` acknowledgement must never cover it.
        logger.warn({ ...log, err }, "command left unacknowledged: reconnecting");
        acks.flush();
        backlog.length = 0;
        if (connection === current) connection = undefined;
        await current.close().catch(() => {});
      } finally {
        busy = false;
      }
    };
    flushAcks = () => acks.flush();
    return (msg: ConsumeMessage) => {
      backlog.push(msg);
      if (busy) return;
      busy = true;
      inFlight = drain();
    };
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
      const onDelivery = consumeInOrder(current, channel);
      await channel.consume(
        topology.queue,
        (msg) => {
          if (msg === null) {
            logger.warn(log, "consumer cancelled by the broker");
            flushAcks();
            void current.close().catch(() => {});
            return;
          }
          onDelivery(msg);
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
    const delays = backoff({ initialMs: 500, maxMs: 10_000 });
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
        flushAcks();
        const current = connection;
        connection = undefined;
        await current?.close().catch(() => {});
        await loop;
      })();
      return closing;
    },
  };
}

interface AckBatch {
  /** `msg` was handed over (or dead-lettered): acknowledge it, with the ones before it, soon. */
  settled(msg: ConsumeMessage): void;
  /** Acknowledge what was settled after the current burst of deliveries. */
  later(): void;
  /** Acknowledge what was settled now. */
  flush(): void;
}

/**
 * Acknowledgements in batches: one `multiple` ack for the last settled command covers every one
 * before it, which is safe because commands settle strictly in delivery order, and saves the
 * broker one (replicated) settlement per command. A batch is sent when `every` commands are
 * waiting for it, at the end of a burst, or before the channel is given up; a command is never
 * acknowledged before it was handed to the backplane.
 */
function ackBatch(channel: ConfirmChannel, every: number): AckBatch {
  let last: ConsumeMessage | undefined;
  let waiting = 0;
  let timer: NodeJS.Immediate | undefined;
  const flush = () => {
    if (timer !== undefined) {
      clearImmediate(timer);
      timer = undefined;
    }
    if (last === undefined) return;
    const msg = last;
    last = undefined;
    waiting = 0;
    try {
      channel.ack(msg, true);
    } catch {
      // The channel is closed: the broker requeues these commands, delivered at least once.
    }
  };
  return {
    settled(msg) {
      last = msg;
      if (++waiting >= every) flush();
    },
    later() {
      if (last !== undefined && timer === undefined) timer = setImmediate(flush);
    },
    flush,
  };
}
