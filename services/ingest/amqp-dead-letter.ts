import type { ConfirmChannel, ConsumeMessage } from "amqplib";
import type { DeadLetterReason } from "./failures.js";

/** Headers a dead letter carries, beside the publisher's own. */
export const DEAD_LETTER_HEADERS = {
  reason: "x-switchboard-error",
  code: "x-switchboard-error-code",
  consumer: "x-switchboard-consumer",
} as const;

/**
 * Copies `message` into the dead-letter queue with its reason in headers, and resolves once the
 * broker confirmed it (rejects when it refused: the caller must then not acknowledge the
 * original, which comes back). The publisher's properties are kept, except `expiration` (a dead
 * letter should stay) and `userId` (the broker checks it against our login).
 */
export function sendDeadLetter(
  channel: Pick<ConfirmChannel, "sendToQueue">,
  deadQueue: string,
  message: ConsumeMessage,
  why: DeadLetterReason & { consumer: string },
): Promise<void> {
  const { properties } = message;
  return new Promise<void>((resolve, reject) => {
    channel.sendToQueue(
      deadQueue,
      message.content,
      {
        contentType: properties.contentType,
        contentEncoding: properties.contentEncoding,
        messageId: properties.messageId,
        correlationId: properties.correlationId,
        timestamp: properties.timestamp,
        type: properties.type,
        appId: properties.appId,
        persistent: true,
        headers: {
          ...properties.headers,
          [DEAD_LETTER_HEADERS.reason]: why.reason,
          [DEAD_LETTER_HEADERS.code]: why.code,
          [DEAD_LETTER_HEADERS.consumer]: why.consumer,
        },
      },
      (err: unknown) => (err ? reject(err) : resolve()),
    );
  });
}
