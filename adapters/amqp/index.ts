/**
 * RabbitMQ backplane for Socket.IO: `createAmqpAdapter(connection, opts)` for
 * servers, `new AmqpEmitter(connection, opts)` for any other Node process.
 */

export { ErrorCode, isSwitchboardError, SwitchboardError } from "../../core/errors.js";
export { AmqpAdapter } from "./adapter.js";
export { WIRE_VERSION } from "./codec.js";
export {
  AmqpBroadcastOperator,
  AmqpBroadcastOperatorRoot,
  AmqpEmitter,
  type AmqpEmitterOptions,
  RESERVED_EVENTS,
} from "./emitter.js";
export { createAmqpAdapter } from "./factory.js";
export type { AmqpAdapterOptions, AmqpLogger, AmqpTransportOptions } from "./options.js";
export type { TransportStats as AmqpStats } from "./transport.js";
