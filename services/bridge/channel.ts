import type { Logger } from "../../core/logger.js";

/**
 * The python-socketio channel on one broker, as the bridge of one gateway uses it: its own
 * subscription (every message reaches every listener, like each python-socketio server) and
 * publishing JSON text on it (migration mode).
 */
export interface PythonChannel {
  /** True while the subscription is in place. */
  isConnected(): boolean;
  /** Publishes one message body; false when it could not be handed to the broker (dropped). */
  publish(body: string): boolean;
  /** Idempotent; stops consuming and closes the connections. */
  close(): Promise<void>;
}

export interface ChannelOptions {
  /** `amqp://`, `amqps://`, `redis://` or `rediss://`. */
  url: string;
  /** Exchange (RabbitMQ) or pub/sub channel (Redis) name. */
  channel: string;
  onMessage(body: Buffer): void;
  /** Called after each (re)subscription, so callers can tell when listening started. */
  onConnected?(): void;
  logger: Logger;
}

export async function openPythonChannel(options: ChannelOptions): Promise<PythonChannel> {
  const protocol = new URL(options.url).protocol;
  if (protocol === "amqp:" || protocol === "amqps:") {
    const { openAmqpChannel } = await import("./amqp-channel.js");
    return openAmqpChannel(options);
  }
  const { openRedisChannel } = await import("./redis-channel.js");
  return openRedisChannel(options);
}
