/**
 * `switchboard/publisher`: publish to Socket.IO clients from any Node process, through the
 * RabbitMQ queue, the Redis stream or a gateway's HTTP API. The command is checked here with the
 * gateways' own schema (core/publish-command.ts), so a bad one fails at the caller with the same reason.
 */

export { ErrorCode, isSwitchboardError, SwitchboardError } from "../../core/errors.js";
export {
  checkPublishCommand,
  type PublishCommand,
  publishCommandSchema,
} from "../../core/publish-command.js";
export {
  type AmqpPublisherOptions,
  createPublisher,
  type HttpPublisherOptions,
  type Publisher,
  type PublisherOptions,
  type PublishInput,
  type PublishResult,
  type PublishVia,
  type RedisPublisherOptions,
} from "./publisher.js";
