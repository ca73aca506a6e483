import type { ConfirmChannel, ConsumeMessage } from "amqplib";
import type { Logger } from "../../core/logger.js";
import {
  type ChannelEvents,
  declarePublishTopology,
  type ResolvedTopology,
  type TopologyChannel,
} from "../../core/publish-queue.js";

/** What a consumer does on its confirm channel (amqplib's `ConfirmChannel` fits). */
export type ConsumerChannel = Pick<
  ConfirmChannel,
  "prefetch" | "consume" | "ack" | "nack" | "sendToQueue" | "close"
> &
  ChannelEvents;

/** What the ingest needs of a connection (what amqplib's `connect()` resolves to fits). */
export interface AmqpConnection {
  createChannel(): Promise<TopologyChannel>;
  createConfirmChannel(): Promise<ConsumerChannel>;
  close(): Promise<void>;
  on(event: "error", listener: (err: Error) => void): unknown;
  once(event: "close", listener: () => void): unknown;
}

/** Opens a connection: `amqplib.connect`, or a fake in tests. */
export type AmqpConnect = (
  url: string,
  socketOptions: { clientProperties: { connection_name: string } },
) => Promise<AmqpConnection>;

export interface AmqpSessionOptions {
  url: string;
  /** Consumer name: the connection name and the prefix of the consumer tag. */
  name: string;
  topology: ResolvedTopology;
  /** Unacknowledged deliveries at once. */
  prefetch: number;
  logger: Logger;
}

/**
 * One connection to RabbitMQ and its confirm channel, with the publish topology declared: the
 * unit a consumer reconnects. It ends (`closed` resolves) when the connection or the channel
 * dies, when the broker cancels the consumer, or on `close()`; the broker then requeues what
 * was not acknowledged. Nothing is consumed before the topology is declared.
 */
export class AmqpSession {
  readonly channel: ConsumerChannel;
  /** Resolves once the connection is closed, for whatever reason. */
  readonly closed: Promise<void>;
  readonly #connection: AmqpConnection;
  readonly #options: AmqpSessionOptions;
  #closing: Promise<void> | undefined;

  private constructor(
    connection: AmqpConnection,
    channel: ConsumerChannel,
    closed: Promise<void>,
    options: AmqpSessionOptions,
  ) {
    this.#connection = connection;
    this.channel = channel;
    this.closed = closed;
    this.#options = options;
  }

  static async open(connect: AmqpConnect, options: AmqpSessionOptions): Promise<AmqpSession> {
    const { logger, topology } = options;
    const log = { queue: topology.queue };
    const connection = await connect(options.url, {
      clientProperties: { connection_name: `switchboard ingest ${options.name}` },
    });
    const closed = new Promise<void>((resolve) => connection.once("close", () => resolve()));
    connection.on("error", (err: Error) => logger.warn({ ...log, err }, "ingest connection error"));
    try {
      await declarePublishTopology(connection, topology, (queue, err) =>
        logger.warn({ queue, err }, "queue exists with other arguments: using it as it is"),
      );
      const channel = await connection.createConfirmChannel();
      channel.on("error", (err: Error) => logger.warn({ ...log, err }, "ingest channel error"));
      // Without its channel a connection consumes nothing: end the session, to start over.
      channel.on("close", () => void connection.close().catch(() => {}));
      await channel.prefetch(options.prefetch);
      return new AmqpSession(connection, channel, closed, options);
    } catch (err) {
      await connection.close().catch(() => {});
      throw err;
    }
  }

  /**
   * Starts consuming the publish queue: `onMessage` gets every delivery in order. A broker that
   * cancels the consumer (queue deleted) ends the session.
   */
  async consume(onMessage: (message: ConsumeMessage) => void, onCancel: () => void): Promise<void> {
    const { name, topology, prefetch, logger } = this.#options;
    await this.channel.consume(
      topology.queue,
      (message) => {
        if (message !== null) return onMessage(message);
        logger.warn({ queue: topology.queue }, "consumer cancelled by the broker");
        onCancel();
        void this.close();
      },
      { noAck: false, consumerTag: `${name}:${Date.now()}` },
    );
    logger.info({ queue: topology.queue, prefetch }, "ingest consuming (single active consumer)");
  }

  /** Closes the connection (idempotent); unacknowledged deliveries go back to the queue. */
  close(): Promise<void> {
    this.#closing ??= this.#connection.close().catch(() => {});
    return this.#closing;
  }
}
