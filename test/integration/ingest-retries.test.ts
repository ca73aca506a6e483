import { describe, expect, it, onTestFinished } from "vitest";
import type { PublishCommand } from "../../core/publish-command.js";
import {
  DEAD_LETTER_HEADERS,
  type Ingest,
  startAmqpIngest,
  startRedisIngest,
} from "../../services/ingest/index.js";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { amqpConnection, prepareBrokers, redisClient, uniqueNames } from "../support/publish.js";
import { waitFor } from "../support/wait.js";

/** A handler that throws for commands whose data says `fail` (as many times as that says). */
function flakyHandler() {
  const delivered: string[] = [];
  const failures = new Map<string, number>();
  const handle = (command: PublishCommand) => {
    const id = command.id ?? "";
    const fail = (command.data as { fail?: number }).fail ?? 0;
    const seen = failures.get(id) ?? 0;
    if (seen < fail) {
      failures.set(id, seen + 1);
      throw new Error(`backplane hiccup ${seen + 1}`);
    }
    delivered.push(id);
  };
  return { handle, delivered, failures };
}

const body = (id: string, fail: number) =>
  JSON.stringify({ v: 1, id, event: "message", data: { fail } });

function closeAfter(ingest: Ingest): Ingest {
  onTestFinished(() => ingest.close());
  return ingest;
}

describe("a command whose hand-over fails is retried, and dead-lettered after INGEST_MAX_ATTEMPTS", () => {
  it("RabbitMQ: requeued until it succeeds; after 3 failed attempts it is a dead letter with the last error", async () => {
    const names = uniqueNames();
    await prepareBrokers(names, onTestFinished, 3);
    const { handle, delivered, failures } = flakyHandler();
    const connection = await amqpConnection();
    closeAfter(
      startAmqpIngest({ url: await amqpUrl(), queue: names.queue, maxAttempts: 3, handle }),
    );
    const channel = await connection.createConfirmChannel();
    await waitFor(async () => (await channel.checkQueue(names.queue)).consumerCount === 1, {
      message: "the consumer",
    });
    channel.sendToQueue(names.queue, Buffer.from(body("flaky", 2)));
    channel.sendToQueue(names.queue, Buffer.from(body("broken", 99)));
    await channel.waitForConfirms();

    const dead = await waitFor(
      async () => (await channel.get(`${names.queue}.dead`, { noAck: true })) || undefined,
      {
        message: "a dead letter",
      },
    );
    expect(dead.properties.headers?.[DEAD_LETTER_HEADERS.reason]).toBe(
      "failed 3 times: backplane hiccup 3",
    );
    await waitFor(() => delivered.includes("flaky"), { message: "the flaky command" });
    expect(delivered).toEqual(["flaky"]);
    expect(failures.get("broken")).toBe(3);
  });

  it("Redis: left pending until it succeeds; after 3 failed attempts it is a dead letter with the last error", async () => {
    const names = uniqueNames();
    await prepareBrokers(names);
    const { handle, delivered, failures } = flakyHandler();
    const redis = await redisClient();
    await redis.xadd(names.stream, "*", "command", body("flaky", 2));
    await redis.xadd(names.stream, "*", "command", body("broken", 99));
    closeAfter(
      startRedisIngest({ url: await redisUrl(), stream: names.stream, maxAttempts: 3, handle }),
    );

    const dead = await waitFor(
      async () => (await redis.xrange(`${names.stream}:dead`, "-", "+"))[0]?.[1],
      { message: "a dead letter" },
    );
    const fields = Object.fromEntries(
      Array.from({ length: dead.length / 2 }, (_, i) => [dead[2 * i], dead[2 * i + 1]]),
    );
    expect(fields).toMatchObject({
      reason: "failed 3 times: backplane hiccup 3",
      code: "failed",
      attempts: "3",
    });
    await waitFor(() => delivered.includes("flaky"), { message: "the flaky command" });
    expect(delivered).toEqual(["flaky"]);
    expect(failures.get("broken")).toBe(3);
  });
});

describe("a command whose hand-over fails the same way every time is a dead letter at once", () => {
  /** A handler whose backplane cannot encode the command with id `poison`, every time. */
  function poisonedHandler() {
    const calls: string[] = [];
    const handle = (command: PublishCommand) => {
      calls.push(command.id ?? "");
      if (command.id === "poison") throw new RangeError("Maximum call stack size exceeded");
    };
    return { handle, calls };
  }
  const sequence = ["c-0", "c-1", "poison", "c-2", "c-3"];
  const delivered = ["c-0", "c-1", "c-2", "c-3"];

  it("RabbitMQ: tried once, dead-lettered as undeliverable, the commands behind it delivered in order", async () => {
    const names = uniqueNames();
    await prepareBrokers(names, onTestFinished, 10);
    const { handle, calls } = poisonedHandler();
    const connection = await amqpConnection();
    closeAfter(
      startAmqpIngest({ url: await amqpUrl(), queue: names.queue, maxAttempts: 10, handle }),
    );
    const channel = await connection.createConfirmChannel();
    for (const id of sequence) channel.sendToQueue(names.queue, Buffer.from(body(id, 0)));
    await channel.waitForConfirms();

    const dead = await waitFor(
      async () => (await channel.get(`${names.queue}.dead`, { noAck: true })) || undefined,
      { message: "a dead letter" },
    );
    await waitFor(() => calls.length === sequence.length, { message: "every command handled" });
    expect(calls).toEqual(sequence);
    expect(dead.properties.headers?.[DEAD_LETTER_HEADERS.code]).toBe("undeliverable");
    expect(dead.properties.headers?.[DEAD_LETTER_HEADERS.reason]).toBe(
      "cannot be delivered: Maximum call stack size exceeded",
    );
    expect(calls.filter((id) => id !== "poison")).toEqual(delivered);
    await waitFor(async () => (await channel.checkQueue(names.queue)).messageCount === 0, {
      message: "an empty queue",
    });
  });

  it("Redis: tried once, dead-lettered as undeliverable, the entries behind it delivered in order", async () => {
    const names = uniqueNames();
    await prepareBrokers(names);
    const { handle, calls } = poisonedHandler();
    const redis = await redisClient();
    for (const id of sequence) await redis.xadd(names.stream, "*", "command", body(id, 0));
    closeAfter(
      startRedisIngest({ url: await redisUrl(), stream: names.stream, maxAttempts: 10, handle }),
    );

    const dead = await waitFor(
      async () => (await redis.xrange(`${names.stream}:dead`, "-", "+"))[0]?.[1],
      { message: "a dead letter" },
    );
    const fields = Object.fromEntries(
      Array.from({ length: dead.length / 2 }, (_, i) => [dead[2 * i], dead[2 * i + 1]]),
    );
    expect(fields).toMatchObject({
      code: "undeliverable",
      reason: "cannot be delivered: Maximum call stack size exceeded",
      attempts: "1",
    });
    await waitFor(() => calls.length === sequence.length, { message: "every entry handled" });
    expect(calls).toEqual(sequence);
    await waitFor(
      async () => ((await redis.xpending(names.stream, "switchboard")) as [number])[0] === 0,
      { message: "no entry left pending" },
    );
  });
});
