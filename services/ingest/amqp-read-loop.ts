import type { ConsumeMessage } from "amqplib";
import type { Logger } from "../../core/logger.js";
import { checkPublishCommand } from "../../core/publish-command.js";
import { AckBatch } from "./ack-batch.js";
import { sendDeadLetter } from "./amqp-dead-letter.js";
import type { ConsumerChannel } from "./amqp-session.js";
import { type DeadLetterReason, deterministicFailure, exhausted } from "./failures.js";
import type { IngestOptions } from "./types.js";

export interface AmqpReadLoopOptions {
  handle: IngestOptions["handle"];
  isReady: () => boolean;
  maxCommandBytes: number;
  maxAttempts: number;
  deadQueue: string;
  consumerName: string;
  /** Settled deliveries acknowledged at once (one `multiple` ack). */
  ackEvery: number;
  logger: Logger;
  /** Fields on every log line (the queue). */
  log: Record<string, unknown>;
  onOutcome?: IngestOptions["onOutcome"];
  /**
   * Gives the channel's session up (closes its connection): called when the gateway stops being
   * ready or the channel failed mid-command; the broker requeues what was not acknowledged.
   */
  release: () => void;
}

/**
 * Hands the deliveries of one channel to `handle`, strictly in delivery order, each after the
 * one before it settled: acknowledged (in batches) once handed over, dead-lettered with its
 * reason when it is bad or fails the same way every time, requeued when it failed otherwise.
 * Runs synchronously while nothing has to wait, so a burst from one socket read is one loop and
 * the common case (a valid command, a synchronous `handle`) costs no promise.
 */
export class AmqpReadLoop {
  readonly #channel: ConsumerChannel;
  readonly #options: AmqpReadLoopOptions;
  readonly #acks: AckBatch<ConsumeMessage>;
  readonly #backlog: ConsumeMessage[] = [];
  #draining: Promise<void> = Promise.resolve();
  #busy = false;
  #stopped = false;

  constructor(channel: ConsumerChannel, options: AmqpReadLoopOptions) {
    this.#channel = channel;
    this.#options = options;
    this.#acks = new AckBatch<ConsumeMessage>(channel, options.ackEvery);
  }

  /** Takes one delivery (the consume callback). */
  push(message: ConsumeMessage): void {
    if (this.#stopped) return; // requeued when the connection closes
    this.#backlog.push(message);
    if (this.#busy) return;
    this.#busy = true;
    this.#draining = this.#drain();
  }

  /** Resolves once every delivery taken so far was handled, or left for the broker. */
  async idle(): Promise<void> {
    while (this.#busy) await this.#draining;
  }

  /**
   * Takes nothing more and acknowledges what was settled, before the session closes: what is
   * still in the backlog stays unacknowledged, and the broker requeues it in order.
   */
  stop(): void {
    this.#stopped = true;
    this.#backlog.length = 0;
    this.#acks.flush();
  }

  /**
   * Takes nothing more, waits for the command in hand, and acknowledges every command handed
   * over: the way to end a session on purpose (shutdown).
   */
  async finish(): Promise<void> {
    this.stop();
    await this.idle();
    this.#acks.flush();
  }

  async #drain(): Promise<void> {
    try {
      // At most `prefetch` deliveries wait here: shift() stays cheap.
      for (let message = this.#backlog.shift(); message !== undefined; ) {
        const waiting = this.#handle(message);
        if (waiting !== undefined) await waiting;
        message = this.#backlog.shift();
      }
      this.#acks.later();
    } catch (err) {
      // The channel failed mid-command (a dead letter refused, a closed channel): acknowledge
      // what was done before it and give the session up, so that the broker requeues this
      // command and the ones behind it; a later `multiple` ack must never cover it.
      this.#options.logger.warn(
        { ...this.#options.log, err },
        "command left unacknowledged: reconnecting",
      );
      this.#release();
    } finally {
      this.#busy = false;
    }
  }

  #release(): void {
    if (this.#stopped) return;
    this.stop();
    this.#options.release();
  }

  /** One command. Returns a promise only when it has to wait (a confirm, an async `handle`). */
  #handle(message: ConsumeMessage): Promise<void> | undefined {
    if (this.#stopped) return;
    const options = this.#options;
    const check = checkPublishCommand(message.content, { maxBytes: options.maxCommandBytes });
    if (!check.ok) return this.#deadLetter(message, { code: check.code, reason: check.reason });
    if (!options.isReady()) {
      // Stop taking commands: closing requeues them, and with a single active consumer the next
      // gateway in line gets them in order. What was handed over is acknowledged first.
      options.logger.warn(options.log, "ingest paused: gateway not ready");
      this.#release();
      return;
    }
    // Quorum queues count earlier deliveries in x-delivery-count (absent on the first one).
    const attempt = Number(message.properties.headers?.["x-delivery-count"] ?? 0) + 1;
    let handed: void | Promise<void>;
    try {
      handed = options.handle(check.command);
    } catch (err) {
      return this.#failed(message, attempt, err);
    }
    if (handed === undefined || typeof handed.then !== "function") {
      this.#delivered(message);
      return;
    }
    return handed.then(
      () => this.#delivered(message),
      (err: unknown) => this.#failed(message, attempt, err),
    );
  }

  #delivered(message: ConsumeMessage): void {
    this.#acks.settled(message);
    this.#options.onOutcome?.("delivered");
  }

  #failed(message: ConsumeMessage, attempt: number, err: unknown): Promise<void> | undefined {
    const dead =
      deterministicFailure(err) ??
      (attempt >= this.#options.maxAttempts ? exhausted(attempt, err) : undefined);
    if (dead !== undefined) return this.#deadLetter(message, dead);
    this.#options.logger.warn({ ...this.#options.log, err, attempt }, "command failed: requeued");
    this.#options.onOutcome?.("retried");
    // Acknowledge the ones before it first: a later `multiple` ack must not cover a requeue.
    this.#acks.flush();
    this.#channel.nack(message, false, true);
    return;
  }

  async #deadLetter(message: ConsumeMessage, why: DeadLetterReason): Promise<void> {
    const { deadQueue, consumerName, logger, log } = this.#options;
    await sendDeadLetter(this.#channel, deadQueue, message, { ...why, consumer: consumerName });
    logger.warn({ ...log, ...why, messageId: message.properties.messageId }, "dead letter");
    this.#options.onOutcome?.("dead");
    this.#acks.settled(message);
  }
}
