import { createRequire } from "node:module";
import { hostname } from "node:os";
import { silentLogger } from "../../core/logger.js";
import { PUBLISH_DEFAULTS } from "../../core/publish-command.js";
import { type AmqpPublishTopology, resolveTopology } from "../../core/publish-queue.js";
import { backoff, pause } from "../../core/retry.js";
import { AmqpReadLoop } from "./amqp-read-loop.js";
import { type AmqpConnect, AmqpSession } from "./amqp-session.js";
import { runSessions, type Sleep } from "./sessions.js";
import type { Ingest, IngestOptions } from "./types.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const amqp = createRequire(import.meta.url)("amqplib") as typeof import("amqplib");

export { DEAD_LETTER_HEADERS } from "./amqp-dead-letter.js";

export interface AmqpIngestOptions extends IngestOptions, AmqpPublishTopology {
  /** `amqp://` or `amqps://` URL of the broker. */
  url: string;
  /** Commands in flight (unacknowledged) at once: the channel's prefetch. @default 100 */
  prefetch?: number;
}

/** What the consumer is built on; tests pass fakes. */
export interface AmqpIngestDeps {
  /** @default amqplib's `connect` */
  connect?: AmqpConnect;
  /** @default a timer */
  sleep?: Sleep;
}

const READY_POLL_MS = 250;

/**
 * Consumes the RabbitMQ publish queue and hands each command to `handle`, in queue order, one at
 * a time. A command is acknowledged only after `handle` returned; a bad command, or one whose
 * hand-over fails the same way every time, is published to the dead-letter queue with its
 * reason (header `x-switchboard-error`), confirmed, then acknowledged, so it never comes back.
 * Any other failed `handle` is requeued, and dead-lettered at the `maxAttempts`-th attempt.
 * Connection loss: reconnects with backoff, and the broker requeues what this consumer had not
 * acknowledged.
 */
export function startAmqpIngest(options: AmqpIngestOptions, deps: AmqpIngestDeps = {}): Ingest {
  const topology = resolveTopology(options);
  const logger = options.logger ?? silentLogger;
  const isReady = options.isReady ?? (() => true);
  const prefetch = options.prefetch ?? 100;
  const name = options.consumerName ?? `${hostname()}:${process.pid}`;
  const connect: AmqpConnect =
    deps.connect ?? ((url, socketOptions) => amqp.connect(url, socketOptions));
  const log = { queue: topology.queue };
  const stop = new AbortController();
  let current: { session: AmqpSession; reader: AmqpReadLoop } | undefined;

  /** One connection's life: resolves when it closes (broker gone, paused, or stopped). */
  const session = async (healthy: () => void): Promise<void> => {
    const opened = await AmqpSession.open(connect, {
      url: options.url,
      name,
      topology,
      prefetch,
      logger,
    });
    const reader = new AmqpReadLoop(opened.channel, {
      handle: options.handle,
      isReady,
      maxCommandBytes: options.maxCommandBytes ?? PUBLISH_DEFAULTS.maxCommandBytes,
      maxAttempts: topology.maxAttempts,
      deadQueue: topology.deadQueue,
      consumerName: name,
      ackEvery: Math.floor(prefetch / 2),
      logger,
      log,
      onOutcome: options.onOutcome,
      release: () => void opened.close(),
    });
    current = { session: opened, reader };
    try {
      if (stop.signal.aborted) return;
      await opened.consume(
        (message) => reader.push(message),
        () => reader.stop(),
      );
      healthy();
      await opened.closed;
    } finally {
      reader.stop();
      await opened.close();
      if (current?.session === opened) current = undefined;
    }
  };

  const loop = runSessions({
    signal: stop.signal,
    isReady,
    readyPollMs: READY_POLL_MS,
    delays: backoff({ initialMs: 500, maxMs: 10_000 }),
    sleep: deps.sleep ?? pause,
    session,
    onError: (err) => logger.warn({ ...log, err }, "ingest could not consume"),
  });

  let closing: Promise<void> | undefined;
  return {
    close() {
      closing ??= (async () => {
        stop.abort();
        // Commands in hand are handed over and acknowledged; the rest go back to the queue.
        const last = current;
        await last?.reader.finish();
        await last?.session.close();
        await loop;
      })();
      return closing;
    },
  };
}
