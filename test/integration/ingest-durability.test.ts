import { describe, expect, it, onTestFinished } from "vitest";
import { createPublisher } from "../../services/publisher/index.js";
import { amqpUrl } from "../support/brokers.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import {
  ingested,
  listener,
  prepareBrokers,
  redisClient,
  startPublishGateway,
  tally,
  uniqueNames,
} from "../support/publish.js";
import { waitFor } from "../support/wait.js";

const COMMANDS = 10_000;

const command = (n: number, room: string) => ({
  id: `c-${n}`,
  rooms: [room],
  event: "message",
  data: { n },
});

/**
 * Waits until both clients hold all COMMANDS distinct commands, each with its matching data, and
 * at most `maxDuplicates` repeated ids.
 */
async function expectEveryCommandAtBoth(
  clients: Array<{ received: Parameters<typeof tally>[0] }>,
  maxDuplicates: number,
): Promise<void> {
  await waitFor(() => clients.every((client) => tally(client.received).distinct === COMMANDS), {
    timeoutMs: 60_000,
    message: `${COMMANDS} commands at both clients`,
  }).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(clients.map((c) => tally(c.received)))}`);
  });
  for (const client of clients) {
    const { distinct, duplicates, mismatched } = tally(client.received);
    expect({ distinct, mismatched }).toEqual({ distinct: COMMANDS, mismatched: 0 });
    expect(duplicates).toBeLessThanOrEqual(maxDuplicates);
  }
}

/**
 * Kills the gateway with SIGKILL once `started()` holds. With `frozen`, the gateway is first
 * frozen (SIGSTOP) until `frozen()` holds of its state, so the kill lands where the test wants.
 */
async function killMidStream(
  gateway: GatewayProcess,
  started: () => boolean,
  frozen: () => Promise<boolean> = async () => true,
) {
  await waitFor(started, { timeoutMs: 60_000, message: "the consumer under way" });
  await waitFor(
    async () => {
      gateway.signal("SIGSTOP");
      if (await frozen()) return true;
      gateway.signal("SIGCONT");
      return false;
    },
    { timeoutMs: 30_000, intervalMs: 10, message: "the consuming gateway mid-stream" },
  );
  gateway.signal("SIGKILL");
  await gateway.exited;
}

// 10,000 commands through real processes on a shared 2-core machine: generous bounds.
describe("commands queued while no gateway consumes are all delivered, across a kill -9", {
  timeout: 120_000,
}, () => {
  it("RabbitMQ: 10,000 queued commands reach the clients after the active consumer is killed mid-stream", async () => {
    const names = uniqueNames();
    await prepareBrokers(names);
    const publisher = createPublisher({ via: "amqp", url: await amqpUrl(), queue: names.queue });
    onTestFinished(() => publisher.close());
    for (let n = 0; n < COMMANDS; n += 1000) {
      const batch = Array.from({ length: 1000 }, (_, i) =>
        publisher.publish(command(n + i, names.room)),
      );
      await Promise.all(batch);
    }

    // The clients' gateway does not consume; the two that do start after it.
    const clients = await startPublishGateway({ names, ingest: false });
    const first = await listener(clients, [names.room]);
    const second = await listener(clients, [names.room]);
    const consumers = await Promise.all([
      startPublishGateway({ names }),
      startPublishGateway({ names }),
    ]);

    // Single active consumer: exactly one of them takes commands. Kill it mid-stream.
    const active = await waitFor(
      async () => {
        for (const gateway of consumers) if ((await ingested(gateway, "amqp")) > 0) return gateway;
        return undefined;
      },
      { timeoutMs: 30_000, message: "an active consumer" },
    );
    const standby = consumers.find((gateway) => gateway !== active)!;
    await killMidStream(active, () => first.received.length >= 500);
    expect(first.received.length).toBeLessThan(COMMANDS);

    // Redeliveries after the kill are the only duplicates, each with its command's id.
    await expectEveryCommandAtBoth([first, second], 100 + 1);
    expect(await ingested(standby, "amqp")).toBeGreaterThan(0);
  });

  it("Redis: 10,000 commands in the stream reach the clients after one consumer is killed mid-stream", async () => {
    const names = uniqueNames();
    await prepareBrokers(names);
    const redis = await redisClient();
    for (let n = 0; n < COMMANDS; n += 1000) {
      const pipeline = redis.pipeline();
      for (let i = n; i < n + 1000; i++) {
        pipeline.xadd(
          names.stream,
          "*",
          "command",
          JSON.stringify({ v: 1, ...command(i, names.room) }),
        );
      }
      await pipeline.exec();
    }

    const clients = await startPublishGateway({ names, ingest: false });
    const first = await listener(clients, [names.room]);
    const second = await listener(clients, [names.room]);
    const victimId = `victim-${names.room}`;
    const [victim, survivor] = await Promise.all([
      startPublishGateway({ names, env: { GATEWAY_ID: victimId, INGEST_CLAIM_IDLE_MS: "1000" } }),
      startPublishGateway({ names, env: { INGEST_CLAIM_IDLE_MS: "1000" } }),
    ]);

    // Killed while it holds entries it read but did not acknowledge: the survivor claims them.
    // Watched from the first delivery on: waiting for more could let the victim finish its share
    // first on a fast machine, and then it would never hold any again.
    await killMidStream(
      victim,
      () => first.received.length >= 1,
      async () => {
        const pending = await redis.xpending(names.stream, "switchboard", "-", "+", 1, victimId);
        return (pending as unknown[]).length > 0;
      },
    );
    expect(first.received.length).toBeLessThan(COMMANDS);

    await expectEveryCommandAtBoth([first, second], 100);
    await waitFor(
      async () => ((await redis.xpending(names.stream, "switchboard")) as [number])[0] === 0,
      {
        message: "no entry left pending",
      },
    );
    expect(await ingested(survivor, "redis")).toBeGreaterThan(0);
  });
});
