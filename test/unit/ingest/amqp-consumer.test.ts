import { describe, expect, it } from "vitest";
import { DEAD_LETTER_HEADERS, startAmqpIngest } from "../../../services/ingest/index.js";
import { recordingLogger } from "../../support/amqp-helpers.js";
import { waitFor } from "../../support/wait.js";
import { FakeAmqpBroker } from "./fake-amqp.js";
import {
  closeAfter,
  command,
  deferred,
  isGrowing,
  outcomes,
  recordingHandler,
  recordingSleep,
} from "./helpers.js";

const QUEUE = "switchboard.publish";
const DEAD = "switchboard.publish.dead";
const idOf = (body: string): string => {
  try {
    return JSON.parse(body).id;
  } catch {
    return body;
  }
};
const ids = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `c-${from + i}`);

function setup(
  options: {
    handler?: ReturnType<typeof recordingHandler>;
    prefetch?: number;
    maxAttempts?: number;
    isReady?: () => boolean;
  } = {},
) {
  const broker = new FakeAmqpBroker();
  const { sleep, delays } = recordingSleep();
  const handler = options.handler ?? recordingHandler();
  const { counts, onOutcome } = outcomes();
  const logger = recordingLogger();
  const ingest = closeAfter(
    startAmqpIngest(
      {
        url: "amqp://fake",
        handle: handler.handle,
        prefetch: options.prefetch ?? 10,
        maxAttempts: options.maxAttempts ?? 3,
        isReady: options.isReady,
        consumerName: "gw-a",
        logger,
        onOutcome,
      },
      { connect: broker.connect, sleep },
    ),
  );
  const consuming = () =>
    waitFor(() => broker.consumers(QUEUE).length === 1, { message: "a consumer on the queue" });
  /** Acknowledged commands: their id, or the body of a command that is not JSON. */
  const acked = () => broker.ackCalls.flatMap((call) => call.contents.map(idOf));
  const deadLetters = () =>
    broker.queue(DEAD).map((m) => ({
      body: m.content.toString(),
      code: m.headers[DEAD_LETTER_HEADERS.code],
      reason: m.headers[DEAD_LETTER_HEADERS.reason],
      consumer: m.headers[DEAD_LETTER_HEADERS.consumer],
    }));
  return { broker, ingest, handler, counts, delays, logger, consuming, acked, deadLetters };
}

describe("AMQP ingest: acknowledgements in batches, in order, after the hand-over", () => {
  it("acknowledges every command once, in queue order, with few multiple acks", async () => {
    const { broker, handler, consuming, acked } = setup({ prefetch: 10 });
    await consuming();
    for (let n = 0; n < 25; n++) broker.enqueue(QUEUE, command(n));

    await waitFor(() => acked().length === 25, { message: "25 commands acknowledged" });
    expect(handler.delivered).toEqual(ids(0, 25));
    expect(acked()).toEqual(ids(0, 25));
    expect(broker.ackCalls.every((call) => call.allUpTo)).toBe(true);
    expect(broker.ackCalls.length).toBeLessThan(25);
    expect(broker.protocolErrors).toEqual([]);
  });

  it("acknowledges no command before its hand-over returned, nor any command behind it", async () => {
    const slow = deferred();
    const handler = recordingHandler((c) => (c.id === "c-3" ? slow.promise : undefined));
    const { broker, consuming, acked } = setup({ handler, prefetch: 10 });
    await consuming();
    for (let n = 0; n < 8; n++) broker.enqueue(QUEUE, command(n));

    await waitFor(() => handler.calls.includes("c-3"), { message: "c-3 in hand" });
    // Let the end-of-burst acknowledgement run: it may cover c-0..c-2, never c-3 or later.
    await waitFor(() => acked().length === 3, { message: "the commands before c-3 acknowledged" });
    expect(acked()).toEqual(ids(0, 3));
    expect(handler.calls).toEqual(ids(0, 4)); // nothing behind c-3 was handed over yet

    slow.resolve();
    await waitFor(() => acked().length === 8, { message: "every command acknowledged" });
    expect(handler.delivered).toEqual(ids(0, 8));
    expect(acked()).toEqual(ids(0, 8));
  });
});

describe("AMQP ingest: reconnects after connection loss, with backoff", () => {
  it("retries a broker that refuses connections with growing delays, then consumes", async () => {
    const broker = new FakeAmqpBroker();
    broker.down = true;
    const { sleep, delays } = recordingSleep();
    const handler = recordingHandler();
    closeAfter(
      startAmqpIngest(
        { url: "amqp://fake", handle: handler.handle },
        { connect: broker.connect, sleep },
      ),
    );
    await waitFor(() => broker.connectAttempts >= 6, { message: "6 connection attempts" });
    expect(isGrowing(delays, 5)).toBe(true);
    expect(delays[0]).toBeGreaterThanOrEqual(250);
    expect(delays[0]).toBeLessThanOrEqual(500);
    expect(Math.max(...delays)).toBeLessThanOrEqual(10_000);

    broker.down = false;
    broker.enqueue(QUEUE, command(1));
    await waitFor(() => handler.delivered.length === 1, {
      message: "the command after the outage",
    });
    expect(handler.delivered).toEqual(["c-1"]);
  });

  it("a dropped connection: unacknowledged commands come back and are delivered, in order, none lost", async () => {
    const hold = deferred();
    const handler = recordingHandler((c) => (c.id === "c-2" ? hold.promise : undefined));
    const { broker, consuming, acked, delays } = setup({ handler, prefetch: 10 });
    await consuming();
    for (let n = 0; n < 6; n++) broker.enqueue(QUEUE, command(n));
    await waitFor(() => handler.calls.includes("c-2"), { message: "c-2 in hand" });
    await waitFor(() => acked().length === 2, { message: "c-0 and c-1 acknowledged" });

    const before = broker.connectAttempts;
    broker.dropConnections();
    hold.resolve(); // the hand-over returns after the connection is gone: it cannot be acked
    await waitFor(() => broker.connectAttempts > before, { message: "a new connection" });
    await waitFor(() => acked().length === 6, { message: "every command acknowledged" });

    expect(acked()).toEqual(ids(0, 6));
    // c-2 was handed over twice (at least once); everything behind it once after the reconnect.
    expect(handler.delivered.filter((id) => id === "c-2").length).toBe(2);
    expect([...new Set(handler.delivered)]).toEqual(ids(0, 6));
    expect(delays.length).toBeGreaterThanOrEqual(1);
    expect(broker.protocolErrors).toEqual([]);
  });

  it("stops consuming while the gateway is not ready, so that another consumer gets the queue", async () => {
    let ready = true;
    const handler = recordingHandler();
    const { broker, consuming } = setup({ handler, isReady: () => ready });
    await consuming();
    broker.enqueue(QUEUE, command(0));
    await waitFor(() => handler.delivered.length === 1, { message: "c-0" });

    ready = false;
    broker.enqueue(QUEUE, command(1));
    await waitFor(() => broker.consumers(QUEUE).length === 0, { message: "the consumer gone" });
    expect(broker.contents(QUEUE)).toEqual([command(1)]);
    expect(handler.calls).toEqual(["c-0"]);

    ready = true;
    await waitFor(() => handler.delivered.length === 2, { message: "c-1 once ready again" });
    expect(handler.delivered).toEqual(["c-0", "c-1"]);
  });
});

describe("AMQP ingest: dead letters", () => {
  it("a command whose hand-over fails the same way every time is a dead letter at once; the ones behind it follow in order", async () => {
    const handler = recordingHandler((c) => {
      if (c.id === "c-2") throw new RangeError("Maximum call stack size exceeded");
    });
    const { broker, consuming, acked, deadLetters, counts } = setup({ handler, maxAttempts: 10 });
    await consuming();
    for (let n = 0; n < 6; n++) broker.enqueue(QUEUE, command(n));

    await waitFor(() => acked().length === 6, { message: "every command settled" });
    expect(handler.calls).toEqual(ids(0, 6)); // c-2 tried once, never retried
    expect(handler.delivered).toEqual(["c-0", "c-1", "c-3", "c-4", "c-5"]);
    expect(deadLetters()).toEqual([
      {
        body: command(2),
        code: "undeliverable",
        reason: "cannot be delivered: Maximum call stack size exceeded",
        consumer: "gw-a",
      },
    ]);
    expect(counts).toEqual({ delivered: 5, dead: 1, retried: 0 });
  });

  it("a command that fails otherwise is requeued, and a dead letter at maxAttempts with the last error", async () => {
    let failures = 0;
    const handler = recordingHandler((c) => {
      if (c.id === "c-1") throw new Error(`backplane hiccup ${++failures}`);
    });
    const { broker, consuming, acked, deadLetters, counts } = setup({ handler, maxAttempts: 3 });
    await consuming();
    for (let n = 0; n < 3; n++) broker.enqueue(QUEUE, command(n));

    await waitFor(() => deadLetters().length === 1, { message: "a dead letter" });
    await waitFor(() => acked().length === 3, { message: "every command settled" });
    expect(deadLetters()[0]).toMatchObject({
      code: "failed",
      reason: "failed 3 times: backplane hiccup 3",
    });
    expect(handler.calls.filter((id) => id === "c-1")).toHaveLength(3);
    expect(handler.delivered).toEqual(["c-0", "c-2"]);
    expect(counts).toEqual({ delivered: 2, dead: 1, retried: 2 });
    expect(broker.protocolErrors).toEqual([]);
  });

  it("a bad command is a dead letter with its reason; the broker refusing the dead letter leaves it on the queue", async () => {
    const { broker, consuming, acked, deadLetters, handler, logger } = setup();
    await consuming();
    broker.refusePublishes = true;
    broker.enqueue(QUEUE, command(0));
    broker.enqueue(QUEUE, '{"v":1,"event":');
    broker.enqueue(QUEUE, command(2));
    await waitFor(() => broker.connectAttempts >= 2, { message: "the session given up" });
    expect(acked()).toEqual(["c-0"]);

    broker.refusePublishes = false;
    await waitFor(() => acked().length === 3, { message: "every command settled" });
    expect(acked()).toEqual(["c-0", '{"v":1,"event":', "c-2"]);
    expect(deadLetters()).toHaveLength(1);
    expect(deadLetters()[0]).toMatchObject({ body: '{"v":1,"event":', code: "invalid_json" });
    expect(String(deadLetters()[0]?.reason)).toMatch(/^not JSON/);
    const logged = logger.lines.filter((line) => line.message === "dead letter");
    expect(logged.map((line) => Object.keys(line.fields).sort())).toEqual([
      ["code", "messageId", "queue", "reason"],
    ]);
    expect(handler.delivered).toEqual(["c-0", "c-2"]);
  });
});

describe("AMQP ingest: close", () => {
  it("hands over the command in hand, acknowledges it, returns the rest to the queue; twice is fine", async () => {
    const slow = deferred();
    const handler = recordingHandler((c) => (c.id === "c-1" ? slow.promise : undefined));
    const broker = new FakeAmqpBroker();
    const ingest = startAmqpIngest(
      { url: "amqp://fake", handle: handler.handle, prefetch: 10 },
      { connect: broker.connect, sleep: recordingSleep().sleep },
    );
    await waitFor(() => broker.consumers(QUEUE).length === 1, { message: "the consumer" });
    for (let n = 0; n < 5; n++) broker.enqueue(QUEUE, command(n));
    await waitFor(() => handler.calls.includes("c-1"), { message: "c-1 in hand" });

    const closed = ingest.close();
    slow.resolve();
    await Promise.all([closed, ingest.close()]);
    expect(handler.delivered).toEqual(["c-0", "c-1"]);
    expect(broker.ackCalls.flatMap((c) => c.contents)).toEqual([command(0), command(1)]);
    expect(broker.contents(QUEUE)).toEqual([command(2), command(3), command(4)]);
    expect(broker.openConnections()).toEqual([]);
  });
});
