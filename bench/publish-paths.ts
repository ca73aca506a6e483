import { randomUUID } from "node:crypto";
import { Emitter } from "@socket.io/redis-emitter";
import amqp from "amqplib";
import { Redis } from "ioredis";
import type { Socket } from "socket.io-client";
import { createPublisher, type Publisher } from "../services/publisher/index.js";
import { amqpUrl, redisUrl } from "../test/support/brokers.js";
import { startGateways } from "./gateways.js";
import { Receivers } from "./receivers.js";
import { type LatencySummary, now, round } from "./stats.js";

interface PathRow {
  path: string;
  commands: number;
  expected: number;
  delivered: number;
  lost: number;
  deliveredPerSec: number;
  latencyMs: LatencySummary;
}

const COMMANDS = Number(process.env.BENCH_COMMANDS ?? 3000);
const MEMBERS_PER_GATEWAY = 5;
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256); // commands in flight per publisher (AMQP confirms: latency-bound)

/**
 * Queue -> client vs emitter -> client: the same commands, to the same room of clients on two
 * gateways (BACKPLANE=redis), sent as fast as the path takes them with a bounded window.
 */
export async function publishPaths(_durationMs: number) {
  const queue = `bench.publish.${randomUUID().slice(0, 8)}`;
  const stream = `bench:publish:${randomUUID().slice(0, 8)}`;
  const [redis, amqpBroker] = [await redisUrl(), await amqpUrl()];
  const cluster = await startGateways("redis", 2, {
    INGEST: "on",
    AMQP_URL: amqpBroker,
    INGEST_AMQP_QUEUE: queue,
    INGEST_REDIS_STREAM: stream,
  });
  const sockets: Socket[] = [];
  const rows: PathRow[] = [];
  try {
    const receivers = await Receivers.join(
      cluster.urls,
      MEMBERS_PER_GATEWAY,
      "bench:paths",
      sockets,
    );
    const members = sockets.length;

    const run = async (
      path: string,
      send: (data: { t: number }) => Promise<unknown> | undefined,
    ) => {
      receivers.reset();
      const expected = COMMANDS * members;
      const started = now();
      // A counted window: Promise.race over the window would add WINDOW reactions per command.
      let inFlight = 0;
      let freed: (() => void) | undefined;
      let failure: unknown;
      const settle = () => {
        inFlight -= 1;
        freed?.();
      };
      const fail = (err: unknown) => {
        failure ??= err;
        settle();
      };
      const room = (limit: number) =>
        new Promise<void>((resolve) => {
          freed = () => {
            if (inFlight >= limit) return;
            freed = undefined;
            resolve();
          };
          freed();
        });
      for (let i = 0; i < COMMANDS; i++) {
        const pending = send({ t: now() });
        if (pending) {
          inFlight += 1;
          pending.then(settle, fail);
          if (inFlight >= WINDOW) await room(WINDOW);
        }
      }
      await room(1);
      if (failure !== undefined) throw failure; // a refused publish is a broken bench, not a loss
      const { delivered, deliveredPerSec, latencyMs } = await receivers.settle(
        path,
        expected,
        started,
      );
      const row: PathRow = {
        path,
        commands: COMMANDS,
        expected,
        delivered,
        lost: Math.max(0, expected - delivered),
        deliveredPerSec,
        latencyMs,
      };
      rows.push(row);
      console.log(
        `publish-path           ${path.padEnd(14)} delivered=${row.delivered}/${row.expected} lost=${row.lost} rate=${row.deliveredPerSec}/s p50=${row.latencyMs.p50}ms p99=${row.latencyMs.p99}ms`,
      );
    };

    // Emitter path: @socket.io/redis-emitter straight onto the Redis backplane.
    const emitterClient = new Redis(redis);
    const emitter = new Emitter(emitterClient);
    await run("redis-emitter", (data) => {
      emitter.to("bench:paths").emit("bench", data);
      return undefined;
    });
    emitterClient.disconnect();

    const publishers: Publisher[] = [
      createPublisher({ via: "amqp", url: amqpBroker, queue }),
      createPublisher({ via: "redis", url: redis, stream }),
    ];
    try {
      for (const [name, publisher] of [
        ["amqp-queue", publishers[0]!],
        ["redis-stream", publishers[1]!],
      ] as const) {
        await run(name, (data) =>
          publisher.publish({ rooms: ["bench:paths"], event: "bench", data }),
        );
      }
    } finally {
      await Promise.all(publishers.map((p) => p.close()));
      // Bench queues are not needed afterwards.
      const connection = await amqp.connect(amqpBroker);
      const channel = await connection.createChannel();
      await channel.deleteQueue(queue).catch(() => undefined);
      await channel.deleteQueue(`${queue}.dead`).catch(() => undefined);
      await connection.close();
      const cleanup = new Redis(redis);
      await cleanup.del(stream, `${stream}:dead`);
      cleanup.disconnect();
    }
    const [emitterRow, amqpRow, streamRow] = rows;
    return {
      rows,
      ratios: {
        "amqp-queue/emitter delivered/s": round(
          amqpRow!.deliveredPerSec / emitterRow!.deliveredPerSec,
        ),
        "redis-stream/emitter delivered/s": round(
          streamRow!.deliveredPerSec / emitterRow!.deliveredPerSec,
        ),
      },
    };
  } finally {
    for (const socket of sockets) socket.disconnect();
    await cluster.stop();
  }
}
