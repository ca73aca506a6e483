import { randomBytes } from "node:crypto";
import amqp from "amqplib";
import { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import { onTestFinished } from "vitest";
import { declarePublishTopology, resolveTopology } from "../../core/publish-queue.js";
import { amqpUrl, redisUrl } from "./brokers.js";
import { connectClient, request } from "./clients.js";
import { type GatewayProcess, startGateway } from "./gateway-process.js";

/** Names of one test's own: queue, stream and room never shared with a parallel test. */
export function uniqueNames() {
  const suffix = randomBytes(5).toString("hex");
  return {
    queue: `switchboard.test.publish.${suffix}`,
    stream: `switchboard:test:publish:${suffix}`,
    room: `chat:${suffix}`,
    muted: `muted:${suffix}`,
  };
}

export const API_KEY = "test-publish-key-1";

export interface PublishGatewayOptions {
  names: ReturnType<typeof uniqueNames>;
  /** Consume the queue and stream (default true). */
  ingest?: boolean;
  env?: Record<string, string>;
}

/** A real gateway process on the Redis backplane, with its own publish queue and stream names. */
export async function startPublishGateway(
  options: PublishGatewayOptions,
  cleanup: (task: () => Promise<void>) => void = onTestFinished,
): Promise<GatewayProcess> {
  const gateway = await startGateway({
    env: {
      BACKPLANE: "redis",
      REDIS_URL: await redisUrl(),
      AMQP_URL: await amqpUrl(),
      INGEST: options.ingest === false ? "off" : "on",
      INGEST_AMQP_QUEUE: options.names.queue,
      INGEST_REDIS_STREAM: options.names.stream,
      PUBLISH_API_KEYS: API_KEY,
      ...options.env,
    },
  });
  cleanup(() => gateway.stop());
  return gateway;
}

/**
 * Declares the test's publish queue as publishers do (a message sent to a queue nobody declared
 * yet is dropped by RabbitMQ), and deletes its queues and streams when the test ends.
 */
export async function prepareBrokers(
  names: ReturnType<typeof uniqueNames>,
  cleanup: (task: () => Promise<void>) => void = onTestFinished,
  maxAttempts?: number,
): Promise<void> {
  const admin = await amqp.connect(await amqpUrl());
  await declarePublishTopology(admin, resolveTopology({ queue: names.queue, maxAttempts }));
  await admin.close();
  cleanup(async () => {
    const connection = await amqp.connect(await amqpUrl());
    const channel = await connection.createChannel();
    await channel.deleteQueue(names.queue);
    await channel.deleteQueue(`${names.queue}.dead`);
    await connection.close();
    const redis = new Redis(await redisUrl());
    await redis.del(names.stream, `${names.stream}:dead`);
    await redis.quit();
  });
}

export interface Received {
  data: unknown;
  id: string | undefined;
}

/** A client on `gateway` that joined `rooms`; records every `event` it receives, in order. */
export async function listener(
  gateway: GatewayProcess,
  rooms: string[],
  event = "message",
): Promise<{ socket: Socket; received: Received[] }> {
  const socket = await connectClient(gateway.url);
  onTestFinished(() => {
    socket.disconnect();
  });
  for (const room of rooms) {
    const reply = await request(socket, "join", room);
    if ((reply as { ok?: boolean }).ok !== true)
      throw new Error(`join ${room}: ${JSON.stringify(reply)}`);
  }
  const received: Received[] = [];
  socket.on(event, (data: unknown, meta?: { id?: string }) =>
    received.push({ data, id: meta?.id }),
  );
  return { socket, received };
}

/** Opens an AMQP connection closed at test end. */
export async function amqpConnection() {
  const connection = await amqp.connect(await amqpUrl());
  onTestFinished(() => connection.close().catch(() => {}));
  return connection;
}

/** Opens a Redis client closed at test end. */
export async function redisClient(): Promise<Redis> {
  const redis = new Redis(await redisUrl());
  onTestFinished(async () => {
    await redis.quit().catch(() => {});
  });
  return redis;
}

/** The gateway's `switchboard_ingest_commands_total` for one path and outcome (0 if unreachable). */
export async function ingested(
  gateway: GatewayProcess,
  path: "amqp" | "redis",
  outcome: "delivered" | "dead" | "retried" = "delivered",
): Promise<number> {
  if (!gateway.isRunning()) return 0;
  const res = await fetch(`${gateway.url}/metrics`, { signal: AbortSignal.timeout(2000) }).catch(
    () => undefined,
  );
  const text = res?.ok ? await res.text() : "";
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.startsWith("switchboard_ingest_commands_total{") &&
        l.includes(`path="${path}"`) &&
        l.includes(`outcome="${outcome}"`),
    );
  return line ? Number(line.split(" ").at(-1)) : 0;
}

/** Counts what a client received by command id: distinct ids, duplicates, mismatches. */
export function tally(received: Received[]) {
  const ids = new Set<string>();
  let mismatched = 0;
  for (const { data, id } of received) {
    if (id !== undefined) ids.add(id);
    if (id !== `c-${(data as { n?: number } | null)?.n}`) mismatched += 1;
  }
  return { distinct: ids.size, duplicates: received.length - ids.size, mismatched };
}
