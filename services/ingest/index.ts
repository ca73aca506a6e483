/**
 * Publish-queue consumers: every gateway takes commands from the RabbitMQ queue and the Redis
 * stream (when their URLs are set) and hands them to the backplane. Importable on their own by
 * Socket.IO applications: `startAmqpIngest({url, handle: (c) => deliver(io, c)})`.
 */

export {
  type AmqpPublishTopology,
  DEFAULT_AMQP_QUEUE,
  declarePublishTopology,
  resolveTopology,
} from "../../core/publish-queue.js";
export {
  type AmqpIngestDeps,
  type AmqpIngestOptions,
  DEAD_LETTER_HEADERS,
  startAmqpIngest,
} from "./amqp-consumer.js";
export type { AmqpConnect, AmqpConnection } from "./amqp-session.js";
export type { DeadLetterCode } from "./failures.js";
export {
  DEFAULT_REDIS_GROUP,
  DEFAULT_REDIS_STREAM,
  type RedisIngestDeps,
  type RedisIngestOptions,
  startRedisIngest,
} from "./redis-consumer.js";
export type { StreamClient } from "./redis-stream-client.js";
export type { Ingest, IngestLogger, IngestOptions, IngestOutcome } from "./types.js";
