import { describe, expect, it } from "vitest";
import { DEAD_LETTER_HEADERS } from "../../services/ingest/index.js";
import {
  amqpConnection,
  ingested,
  listener,
  prepareBrokers,
  redisClient,
  startPublishGateway,
  uniqueNames,
} from "../support/publish.js";
import { waitFor } from "../support/wait.js";

/** Structurally a valid command; its `data` nests deeper than any encoder or stack can follow. */
const DEPTH = 50_000;
const VALID = 30;

function commands(room: string) {
  const valid = (n: number) =>
    JSON.stringify({ v: 1, id: `c-${n}`, event: "message", rooms: [room], data: { n } });
  const poison = `{"v":1,"id":"poison","event":"message","rooms":["${room}"],"data":${"[".repeat(DEPTH)}${"]".repeat(DEPTH)}}`;
  const half = VALID / 2;
  const sequence = [
    ...Array.from({ length: half }, (_, n) => valid(n)),
    poison,
    ...Array.from({ length: VALID - half }, (_, n) => valid(half + n)),
  ];
  const expected = Array.from({ length: VALID }, (_, n) => ({ data: { n }, id: `c-${n}` }));
  return { poison, sequence, expected };
}

async function setUp() {
  const names = uniqueNames();
  await prepareBrokers(names);
  const [consumer, other] = await Promise.all([
    startPublishGateway({ names }),
    startPublishGateway({ names, ingest: false }),
  ]);
  const clients = [await listener(consumer, [names.room]), await listener(other, [names.room])];
  const everyValidCommand = async (expected: unknown[]) => {
    await waitFor(() => clients.every((c) => c.received.length >= expected.length), {
      timeoutMs: 20_000,
      message: `${expected.length} valid commands at both clients`,
    });
    for (const client of clients) expect(client.received).toEqual(expected);
  };
  return { names, consumer, everyValidCommand, ...commands(names.room) };
}

const DEEP_REASON = /^command is nested more than 32 levels deep/;

describe("a command that fails the same way every time is dead-lettered at once and holds back nothing", () => {
  it("RabbitMQ queue: a 50,000-deep command among 30 valid ones is one dead letter; the valid ones arrive in order", async () => {
    const { names, consumer, everyValidCommand, poison, sequence, expected } = await setUp();
    const channel = await (await amqpConnection()).createConfirmChannel();
    for (const body of sequence) channel.sendToQueue(names.queue, Buffer.from(body));
    await channel.waitForConfirms();

    await everyValidCommand(expected);
    const dead = await waitFor(
      async () => (await channel.get(`${names.queue}.dead`, { noAck: true })) || undefined,
      { message: "the dead letter" },
    );
    const headers = dead.properties.headers ?? {};
    expect(dead.content.toString()).toBe(poison);
    expect(headers[DEAD_LETTER_HEADERS.code]).toBe("too_deep");
    expect(String(headers[DEAD_LETTER_HEADERS.reason])).toMatch(DEEP_REASON);
    // Once: never requeued, nothing else dead, nothing left on the queue.
    expect(await ingested(consumer, "amqp", "retried")).toBe(0);
    expect(await ingested(consumer, "amqp", "dead")).toBe(1);
    expect(await channel.get(`${names.queue}.dead`, { noAck: true })).toBe(false);
    expect((await channel.checkQueue(names.queue)).messageCount).toBe(0);
  });

  it("Redis stream: a 50,000-deep command among 30 valid ones is one dead letter; the valid ones arrive in order", async () => {
    const { names, consumer, everyValidCommand, poison, sequence, expected } = await setUp();
    const redis = await redisClient();
    const pipeline = redis.pipeline();
    for (const body of sequence) pipeline.xadd(names.stream, "*", "command", body);
    await pipeline.exec();

    await everyValidCommand(expected);
    const entries = await waitFor(
      async () => {
        const found = await redis.xrange(`${names.stream}:dead`, "-", "+");
        return found.length > 0 ? found : undefined;
      },
      { message: "the dead letter" },
    );
    expect(entries).toHaveLength(1);
    const fields = entries[0]![1];
    const record = Object.fromEntries(
      Array.from({ length: fields.length / 2 }, (_, i) => [fields[2 * i], fields[2 * i + 1]]),
    );
    expect(record.command).toBe(poison);
    expect(record.code).toBe("too_deep");
    expect(record.reason).toMatch(DEEP_REASON);
    expect(record.attempts).toBe("1");
    expect(await ingested(consumer, "redis", "retried")).toBe(0);
    expect(await ingested(consumer, "redis", "dead")).toBe(1);
    await waitFor(
      async () => ((await redis.xpending(names.stream, "switchboard")) as [number])[0] === 0,
      { message: "no entry left pending" },
    );
  });
});
