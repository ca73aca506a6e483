import { describe, expect, it } from "vitest";
import { DEAD_LETTER_HEADERS } from "../../services/ingest/index.js";
import {
  amqpConnection,
  listener,
  prepareBrokers,
  redisClient,
  startPublishGateway,
  uniqueNames,
} from "../support/publish.js";
import { waitFor } from "../support/wait.js";

const MAX_COMMAND_BYTES = 4096;
const ok = { v: 1, event: "message" };

/** Malformed commands, as raw bytes on the wire, and the reason each must be dead-lettered with. */
const POISON: Array<{ kind: string; body: string | Buffer; reason: RegExp }> = [
  { kind: "not JSON", body: '{"v":1,"event":', reason: /^not JSON/ },
  {
    // Valid JSON once decoded with U+FFFD in place of the bad bytes: it must not be delivered so.
    kind: "not UTF-8",
    body: Buffer.concat([
      Buffer.from('{"v":1,"event":"message","data":"A'),
      Buffer.from([0xff, 0xc3, 0x28]),
      Buffer.from('"}'),
    ]),
    reason: /^not JSON: the bytes are not valid UTF-8/,
  },
  { kind: "empty body", body: "", reason: /^not JSON/ },
  { kind: "JSON but not an object", body: "[1,2]", reason: /^command must be an object/ },
  { kind: "wrong version", body: JSON.stringify({ ...ok, v: 2 }), reason: /^v: must be 1/ },
  { kind: "missing event", body: JSON.stringify({ v: 1, data: 1 }), reason: /^event: is required/ },
  {
    kind: "event of the wrong type",
    body: JSON.stringify({ ...ok, event: 42 }),
    reason: /^event: must be a string/,
  },
  {
    kind: "reserved event",
    body: JSON.stringify({ ...ok, event: "disconnect" }),
    reason: /^event: must be 1-100 chars/,
  },
  {
    kind: "rooms not an array",
    body: JSON.stringify({ ...ok, rooms: "chat:1" }),
    reason: /^rooms: must be an array/,
  },
  {
    kind: "bad room name",
    body: JSON.stringify({ ...ok, rooms: ["chat 1"] }),
    reason: /^rooms\[0\]: must be 1-200 chars/,
  },
  {
    kind: "empty rooms",
    body: JSON.stringify({ ...ok, rooms: [] }),
    reason: /^rooms: must not be empty/,
  },
  {
    kind: "unknown field",
    body: JSON.stringify({ ...ok, room: "chat:1" }),
    reason: /^room: unknown field/,
  },
  { kind: "empty id", body: JSON.stringify({ ...ok, id: "" }), reason: /^id: must not be empty/ },
  {
    kind: "bad namespace",
    body: JSON.stringify({ ...ok, namespace: "chat" }),
    reason: /^namespace: must start with \//,
  },
  {
    kind: "bad except",
    body: JSON.stringify({ ...ok, except: [42] }),
    reason: /^except\[0\]: must be a string/,
  },
  {
    kind: "data nested deeper than every backplane carries",
    body: JSON.stringify({ ...ok, data: JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`) }),
    reason: /^command is nested more than 32 levels deep/,
  },
  {
    kind: "huge payload",
    body: JSON.stringify({ ...ok, data: "x".repeat(MAX_COMMAND_BYTES) }),
    reason: /^command is \d+ bytes, over the limit of 4096 bytes/,
  },
];

async function setUp() {
  const names = uniqueNames();
  await prepareBrokers(names);
  const env = { MAX_COMMAND_BYTES: String(MAX_COMMAND_BYTES) };
  const [consumer, other] = await Promise.all([
    startPublishGateway({ names, env }),
    startPublishGateway({ names, env, ingest: false }),
  ]);
  const clients = [await listener(consumer, [names.room]), await listener(other, [names.room])];
  const valid = (n: number) =>
    JSON.stringify({ ...ok, id: `v-${n}`, rooms: [names.room], data: { n } });
  /** valid 0, poison 0, valid 1, poison 1, …, valid N */
  const sequence = POISON.flatMap((poison, n) => [valid(n), poison.body]).concat(
    valid(POISON.length),
  );
  const expected = Array.from({ length: POISON.length + 1 }, (_, n) => ({
    data: { n },
    id: `v-${n}`,
  }));
  const allDelivered = () =>
    waitFor(() => clients.every((c) => c.received.length >= expected.length), {
      timeoutMs: 20_000,
      message: "every valid command at both clients",
    });
  return { names, clients, sequence, expected, allDelivered };
}

describe("a malformed command goes to the dead letters with its reason and blocks nothing", () => {
  it("RabbitMQ: each kind of bad command lands in the dead-letter queue with an x-switchboard-error header", async () => {
    const { names, clients, sequence, expected, allDelivered } = await setUp();
    const channel = await (await amqpConnection()).createConfirmChannel();
    for (const body of sequence)
      channel.sendToQueue(names.queue, Buffer.from(body), { persistent: true });
    await channel.waitForConfirms();

    await allDelivered();
    for (const client of clients) expect(client.received).toEqual(expected);
    const dead: Array<{ body: Buffer; reason: unknown; code: unknown }> = [];
    await waitFor(
      async () => {
        const message = await channel.get(`${names.queue}.dead`, { noAck: true });
        if (message) {
          const headers = message.properties.headers ?? {};
          dead.push({
            body: message.content,
            reason: headers[DEAD_LETTER_HEADERS.reason],
            code: headers[DEAD_LETTER_HEADERS.code],
          });
        }
        return dead.length === POISON.length;
      },
      { message: `${POISON.length} dead letters` },
    );
    // Byte for byte, as they were sent.
    expect(dead.map((d) => d.body)).toEqual(POISON.map((p) => Buffer.from(p.body)));
    POISON.forEach((poison, n) => {
      expect(String(dead[n]?.reason), poison.kind).toMatch(poison.reason);
    });
    expect(new Set(dead.map((d) => d.code))).toEqual(
      new Set(["invalid_json", "invalid_command", "too_deep", "too_large"]),
    );
    // Nothing is redelivered: the queue is empty once the dead letters are there.
    expect((await channel.checkQueue(names.queue)).messageCount).toBe(0);
  });

  it("Redis: each kind of bad entry is added to the dead-letter stream with a reason field", async () => {
    const { names, clients, sequence, expected, allDelivered } = await setUp();
    const redis = await redisClient();
    const pipeline = redis.pipeline();
    for (const body of sequence) pipeline.xadd(names.stream, "*", "command", body);
    pipeline.xadd(names.stream, "*", "something", "else");
    await pipeline.exec();

    await allDelivered();
    for (const client of clients) expect(client.received).toEqual(expected);
    const entries = await waitFor(
      async () => {
        const found = await redis.xrangeBuffer(`${names.stream}:dead`, "-", "+");
        return found.length === POISON.length + 1 ? found : undefined;
      },
      { message: `${POISON.length + 1} dead letters` },
    );
    const dead = entries.map(([, fields]) => {
      const record: Record<string, Buffer> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) record[fields[i]!.toString()] = fields[i + 1]!;
      return record;
    });
    // Byte for byte, as they were added.
    expect(dead.map((d) => d.command)).toEqual([
      ...POISON.map((p) => Buffer.from(p.body)),
      Buffer.alloc(0),
    ]);
    POISON.forEach((poison, n) => {
      expect(String(dead[n]?.reason), poison.kind).toMatch(poison.reason);
    });
    expect(String(dead.at(-1)?.reason)).toBe("entry has no `command` field");
    // Every entry, dead or delivered, is acknowledged.
    await waitFor(
      async () => ((await redis.xpending(names.stream, "switchboard")) as [number])[0] === 0,
      {
        message: "no entry left pending",
      },
    );
  });
});
