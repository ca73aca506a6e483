import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import amqp, { type Channel } from "amqplib";
import type { Socket } from "socket.io-client";
import { createPublisher } from "../services/publisher/index.js";
import { amqpUrl, redisUrl } from "../test/support/brokers.js";
import { waitFor } from "../test/support/wait.js";
import { startGateways } from "./gateways.js";
import { Receivers } from "./receivers.js";
import { type LatencySummary, now, round } from "./stats.js";

/**
 * Python bridge vs the gateway's own queue publish path, in one run, on the same two gateways
 * (BACKPLANE=redis) and the same room of clients on both:
 *
 *  - amqp-queue     publish commands on the RabbitMQ publish queue (the publisher library, as
 *                   any backend would): one gateway consumes each and broadcasts it
 *  - bridge-pickle  python-socketio <= 5.13 emits (a pickle made by Debian's Python, with each
 *                   message's send time patched in) on the kombu fanout exchange: every gateway
 *                   reads every message and delivers to its own clients
 *  - bridge-json    the same as python-socketio >= 5.15.1 writes them (JSON)
 *
 * Messages are sent as fast as each path takes them (AMQP back-pressure honoured); the rate is
 * deliveries to clients per second, from the first send to the last delivery. Not a test: it
 * asserts nothing. BENCH_BRIDGE_MESSAGES sets the count (default 3000).
 */

const MESSAGES = Number(process.env.BENCH_BRIDGE_MESSAGES ?? 3000);
const MEMBERS_PER_GATEWAY = 5;
const ROOM = "bench:bridge";
const PAD = "x".repeat(100);

interface Row {
  path: string;
  messages: number;
  expected: number;
  delivered: number;
  deliveredPerSec: number;
  latencyMs: LatencySummary;
}

/** A pickle of one emit whose `t` float is at a known offset, so each message gets its own. */
function pickleTemplate(channelHost: string): { bytes: Buffer; at: number } {
  const hex = execFileSync(
    "/usr/bin/python3",
    [
      "-c",
      `import pickle\nprint(pickle.dumps({"method": "emit", "event": "bench", "data": {"t": 1234.5, "pad": "${PAD}"}, "namespace": "/", "room": "${ROOM}", "skip_sid": None, "callback": None, "host_id": "${channelHost}"}).hex())`,
    ],
    { encoding: "utf8" },
  ).trim();
  const bytes = Buffer.from(hex, "hex");
  const float = Buffer.alloc(9);
  float[0] = 0x47; // BINFLOAT
  float.writeDoubleBE(1234.5, 1);
  const at = bytes.indexOf(float);
  if (at < 0) throw new Error("no BINFLOAT in the pickle template");
  return { bytes, at: at + 1 };
}

/** Publishes on an exchange as fast as the channel takes it (waits for 'drain' when full). */
async function flood(channel: Channel, exchange: string, next: () => Buffer, count: number) {
  for (let i = 0; i < count; i++) {
    if (!channel.publish(exchange, "", next())) {
      await new Promise((resolve) => channel.once("drain", resolve));
    }
  }
}

export async function bridgeBench(): Promise<{ rows: Row[]; ratios: Record<string, number> }> {
  const suffix = randomUUID().slice(0, 8);
  const queue = `bench.bridge.publish.${suffix}`;
  const channelName = `bench.flask-socketio.${suffix}`;
  const broker = await amqpUrl();
  const cluster = await startGateways("redis", 2, {
    REDIS_URL: await redisUrl(),
    INGEST: "on",
    AMQP_URL: broker,
    INGEST_AMQP_QUEUE: queue,
    PYTHON_BRIDGE_URL: broker,
    PYTHON_BRIDGE_CHANNEL: channelName,
  });
  const sockets: Socket[] = [];
  const rows: Row[] = [];
  const connection = await amqp.connect(broker);
  try {
    await waitFor(
      async () => {
        const texts = await Promise.all(
          cluster.urls.map((u) => fetch(`${u}/metrics`).then((r) => r.text())),
        );
        return texts.every((t) => /switchboard_bridge_connected\{[^}]*\} 1/.test(t));
      },
      { timeoutMs: 30_000, message: "the bridges listening" },
    );
    const receivers = await Receivers.join(cluster.urls, MEMBERS_PER_GATEWAY, ROOM, sockets);
    const expected = MESSAGES * sockets.length;
    const run = async (path: string, send: () => Promise<void>) => {
      receivers.reset();
      const started = now();
      await send();
      const { delivered, deliveredPerSec, latencyMs } = await receivers.settle(
        path,
        expected,
        started,
      );
      const row: Row = {
        path,
        messages: MESSAGES,
        expected,
        delivered,
        deliveredPerSec,
        latencyMs,
      };
      rows.push(row);
      console.log(
        `bridge                 ${path.padEnd(14)} delivered=${row.delivered}/${row.expected} rate=${row.deliveredPerSec}/s p50=${row.latencyMs.p50}ms p99=${row.latencyMs.p99}ms`,
      );
    };

    const publisher = createPublisher({ via: "amqp", url: broker, queue });
    try {
      await run("amqp-queue", async () => {
        const window: Promise<unknown>[] = [];
        for (let i = 0; i < MESSAGES; i++) {
          window.push(
            publisher.publish({ rooms: [ROOM], event: "bench", data: { t: now(), pad: PAD } }),
          );
          if (window.length >= 256) await Promise.all(window.splice(0));
        }
        await Promise.all(window);
      });
    } finally {
      await publisher.close();
    }

    const channel = await connection.createChannel();
    const template = pickleTemplate("bench-python-host");
    await run("bridge-pickle", () =>
      flood(
        channel,
        channelName,
        () => {
          const body = Buffer.from(template.bytes);
          body.writeDoubleBE(now(), template.at);
          return body;
        },
        MESSAGES,
      ),
    );
    await run("bridge-json", () =>
      flood(
        channel,
        channelName,
        () =>
          Buffer.from(
            `{"method": "emit", "event": "bench", "data": [{"t": ${now()}, "pad": "${PAD}"}], "namespace": "/", "room": "${ROOM}", "skip_sid": null, "callback": null, "host_id": "bench-python-host"}`,
          ),
        MESSAGES,
      ),
    );
    await channel.deleteQueue(queue).catch(() => undefined);
    await channel.deleteQueue(`${queue}.dead`).catch(() => undefined);
    await channel.deleteExchange(channelName).catch(() => undefined);
    const [queueRow, pickleRow, jsonRow] = rows;
    const ratios = {
      "bridge-pickle/amqp-queue delivered/s": round(
        pickleRow!.deliveredPerSec / queueRow!.deliveredPerSec,
      ),
      "bridge-json/amqp-queue delivered/s": round(
        jsonRow!.deliveredPerSec / queueRow!.deliveredPerSec,
      ),
    };
    console.log("bridge ratios:", ratios);
    mkdirSync(".bench", { recursive: true });
    writeFileSync(
      `.bench/bridge-${new Date().toISOString().replace(/[:.]/g, "-")}.json`,
      JSON.stringify({ date: new Date().toISOString(), rows, ratios }, null, 2),
    );
    return { rows, ratios };
  } finally {
    for (const socket of sockets) socket.disconnect();
    await connection.close().catch(() => undefined);
    await cluster.stop();
  }
}

// `node --import tsx bench/bridge.ts`: this scenario alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  bridgeBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
