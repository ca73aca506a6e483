import type { Channel } from "amqplib";
import { amqpDeadQueue, PUBLISH_DEFAULTS } from "./publish-command.js";

/**
 * The RabbitMQ side of the publish command contract: the queue publishers fill and gateways
 * consume, declared the same way by both (services/publisher and services/ingest).
 */

/** Where the RabbitMQ publish path lives; every option has the documented default. */
export interface AmqpPublishTopology {
  /** Durable quorum queue that publishers fill and gateways consume. @default "switchboard.publish" */
  queue?: string;
  /** Dead letters: bad commands with their reason, and commands past `maxAttempts`. @default `${queue}.dead` */
  deadQueue?: string;
  /** Deliveries of one command before RabbitMQ dead-letters it (`x-delivery-limit`). @default 10 */
  maxAttempts?: number;
}

export const DEFAULT_AMQP_QUEUE = PUBLISH_DEFAULTS.amqpQueue;
export const DEFAULT_MAX_ATTEMPTS = PUBLISH_DEFAULTS.maxAttempts;

/** A channel's `error` and `close` events (amqplib's channels fit). */
export interface ChannelEvents {
  on(event: "error" | "close", listener: (err: Error) => void): unknown;
}

/** The channel calls that declare the topology (amqplib's `Channel` fits). */
export type TopologyChannel = Pick<Channel, "assertQueue" | "checkQueue" | "close"> & ChannelEvents;

/** Whatever opens channels: an amqplib connection, or a fake in tests. */
export interface ChannelOpener {
  createChannel(): Promise<TopologyChannel>;
}

export interface ResolvedTopology {
  queue: string;
  deadQueue: string;
  maxAttempts: number;
}

export function resolveTopology(options: AmqpPublishTopology = {}): ResolvedTopology {
  const queue = options.queue ?? DEFAULT_AMQP_QUEUE;
  return {
    queue,
    deadQueue: options.deadQueue ?? amqpDeadQueue(queue),
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
  };
}

/**
 * Declares the publish queue and its dead-letter queue, as gateways and publishers both do, so
 * that whoever comes first creates them and commands queued before any gateway runs are kept.
 * Quorum queue: replicated and durable; single active consumer: one gateway at a time consumes,
 * in order, and the next takes over when its connection dies; the broker dead-letters a command
 * delivered `maxAttempts` times (a command that crashes its consumer, say) through the default
 * exchange into `deadQueue`.
 *
 * A queue that exists with other arguments (another `maxAttempts`, or declared by hand) is used
 * as it is: RabbitMQ refuses a redeclaration with other arguments (PRECONDITION_FAILED), and
 * refusing to consume would be worse. `onMismatch` hears about it.
 */
export async function declarePublishTopology(
  connection: ChannelOpener,
  topology: ResolvedTopology,
  onMismatch?: (queue: string, err: Error) => void,
): Promise<void> {
  await declare(connection, topology.deadQueue, { "x-queue-type": "quorum" }, onMismatch);
  await declare(
    connection,
    topology.queue,
    {
      "x-queue-type": "quorum",
      "x-single-active-consumer": true,
      "x-delivery-limit": topology.maxAttempts,
      "x-dead-letter-exchange": "",
      "x-dead-letter-routing-key": topology.deadQueue,
    },
    onMismatch,
  );
}

async function declare(
  connection: ChannelOpener,
  queue: string,
  args: Record<string, unknown>,
  onMismatch?: (queue: string, err: Error) => void,
): Promise<void> {
  // A failed declaration closes its channel: use a throwaway one.
  const channel = await connection.createChannel();
  channel.on("error", () => {});
  try {
    await channel.assertQueue(queue, { durable: true, arguments: args });
    await channel.close();
  } catch (err) {
    if ((err as { code?: number }).code !== 406) throw err;
    onMismatch?.(queue, err as Error);
    const check = await connection.createChannel();
    await check.checkQueue(queue);
    await check.close();
  }
}
