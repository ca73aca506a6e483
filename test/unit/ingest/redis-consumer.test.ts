import { describe, expect, it } from "vitest";
import { startRedisIngest } from "../../../services/ingest/index.js";
import { waitFor } from "../../support/wait.js";
import { FakeRedisStreams } from "./fake-redis-streams.js";
import {
  closeAfter,
  command,
  deferred,
  isGrowing,
  outcomes,
  recordingHandler,
  recordingSleep,
} from "./helpers.js";

const STREAM = "switchboard:publish";
const DEAD = "switchboard:publish:dead";
const GROUP = "switchboard";
const ids = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, i) => `c-${from + i}`);

function setup(
  options: {
    redis?: FakeRedisStreams;
    handler?: ReturnType<typeof recordingHandler>;
    consumer?: string;
    maxAttempts?: number;
    claimIdleMs?: number;
    isReady?: () => boolean;
  } = {},
) {
  const redis = options.redis ?? new FakeRedisStreams();
  const { sleep, delays } = recordingSleep();
  const handler = options.handler ?? recordingHandler();
  const { counts, onOutcome } = outcomes();
  const ingest = closeAfter(
    startRedisIngest(
      {
        url: "redis://fake",
        handle: handler.handle,
        consumerName: options.consumer ?? "gw-a",
        maxAttempts: options.maxAttempts ?? 3,
        claimIdleMs: options.claimIdleMs ?? 60_000,
        batchSize: 10,
        isReady: options.isReady,
        onOutcome,
      },
      { client: redis, sleep },
    ),
  );
  const publish = (...bodies: string[]) => {
    for (const body of bodies) redis.xadd(STREAM, "command", body);
  };
  const drained = () =>
    waitFor(() => redis.pending(STREAM, GROUP).size === 0 && redis.calls.includes("MULTI"), {
      message: "every entry acknowledged",
    });
  return { redis, ingest, handler, counts, delays, publish, drained };
}

describe("Redis ingest: reconnects after connection loss, with backoff", () => {
  it("retries a Redis that is down with growing delays, creates the group, then consumes", async () => {
    const redis = new FakeRedisStreams();
    redis.down = true;
    const { handler, delays, publish } = setup({ redis });
    await waitFor(() => redis.calls.length >= 6, { message: "6 failed attempts" });
    expect(isGrowing(delays, 5)).toBe(true);
    expect(delays[0]).toBeGreaterThanOrEqual(100);
    expect(delays[0]).toBeLessThanOrEqual(200);
    expect(Math.max(...delays)).toBeLessThanOrEqual(5000);

    redis.down = false;
    publish(command(0), command(1));
    await waitFor(() => handler.delivered.length === 2, {
      message: "the commands after the outage",
    });
    expect(handler.delivered).toEqual(["c-0", "c-1"]);
  });

  it("entries read but not acknowledged when the connection broke are handed over again after it, in order", async () => {
    const hold = deferred();
    const handler = recordingHandler((c) => (c.id === "c-1" ? hold.promise : undefined));
    const { redis, publish, drained } = setup({ handler });
    publish(command(0), command(1), command(2));
    await waitFor(() => handler.calls.includes("c-1"), { message: "c-1 in hand" });

    redis.down = true; // the batch's acknowledgement fails: c-0..c-2 stay pending
    hold.resolve();
    await waitFor(() => redis.calls.filter((c) => c === "MULTI").length >= 1, {
      message: "the failed acknowledgement",
    });
    expect(redis.pending(STREAM, GROUP).size).toBe(3);
    redis.down = false;
    publish(command(3));

    await waitFor(() => handler.delivered.includes("c-3"), { message: "c-3" });
    await drained();
    // At least once: the batch before the cut came back first, then the new entry.
    expect(handler.delivered).toEqual(["c-0", "c-1", "c-2", "c-0", "c-1", "c-2", "c-3"]);
  });

  it("a consumer group deleted under it is created again", async () => {
    const { redis, handler, publish } = setup();
    publish(command(0));
    await waitFor(() => handler.delivered.length === 1, { message: "c-0" });
    redis.deleteGroup(STREAM, GROUP);
    publish(command(1));
    await waitFor(() => handler.delivered.includes("c-1"), {
      message: "c-1 after the group is back",
    });
    expect(redis.streams.get(STREAM)?.groups.has(GROUP)).toBe(true);
  });
});

describe("Redis ingest: pending entries of a dead consumer are claimed by another", () => {
  it("takes over what a dead consumer left pending once it is idle, in order, and acknowledges it", async () => {
    const redis = new FakeRedisStreams();
    await redis.createGroup({ stream: STREAM, group: GROUP, consumer: "gw-dead" });
    for (let n = 0; n < 5; n++) redis.xadd(STREAM, "command", command(n));
    // gw-dead read the entries, then died without acknowledging them.
    await redis.readGroup(
      { stream: STREAM, group: GROUP, consumer: "gw-dead" },
      { id: ">", count: 10 },
    );
    expect(redis.pending(STREAM, GROUP).get("1-0")?.consumer).toBe("gw-dead");

    const { handler, drained } = setup({ redis, consumer: "gw-b", claimIdleMs: 50 });
    await waitFor(() => handler.delivered.length === 5, { message: "the dead consumer's entries" });
    await drained();
    expect(handler.delivered).toEqual(ids(0, 5));
  });

  it("leaves alone what another consumer took less than claimIdleMs ago", async () => {
    const redis = new FakeRedisStreams();
    await redis.createGroup({ stream: STREAM, group: GROUP, consumer: "gw-busy" });
    redis.xadd(STREAM, "command", command(0));
    await redis.readGroup(
      { stream: STREAM, group: GROUP, consumer: "gw-busy" },
      { id: ">", count: 10 },
    );

    const { handler, publish } = setup({ redis, consumer: "gw-b", claimIdleMs: 60_000 });
    publish(command(1));
    await waitFor(() => handler.delivered.includes("c-1"), { message: "gw-b's own entry" });
    expect(handler.calls).toEqual(["c-1"]);
    expect(redis.pending(STREAM, GROUP).get("1-0")?.consumer).toBe("gw-busy");
  });

  it("a claimed entry already delivered maxAttempts times is a dead letter, not a new try", async () => {
    const redis = new FakeRedisStreams();
    const target = { stream: STREAM, group: GROUP, consumer: "gw-crashing" };
    await redis.createGroup(target);
    redis.xadd(STREAM, "command", command(0));
    // A command that crashed three consumers in turn: delivered 3 times, never acknowledged.
    await redis.readGroup(target, { id: ">", count: 10 });
    await redis.readGroup(target, { id: "0", count: 10 });
    await redis.readGroup(target, { id: "0", count: 10 });

    const { handler, drained } = setup({
      redis,
      consumer: "gw-b",
      claimIdleMs: 50,
      maxAttempts: 3,
    });
    await drained();
    expect(handler.calls).toEqual([]);
    expect(redis.records(DEAD)).toEqual([
      {
        command: command(0),
        reason: "delivered 3 times without success",
        code: "failed",
        entry: "1-0",
        consumer: "gw-b",
        attempts: "4",
      },
    ]);
  });
});

describe("Redis ingest: dead letters", () => {
  it("a command whose hand-over fails the same way every time is a dead letter at once; the ones behind it follow in order", async () => {
    const handler = recordingHandler((c) => {
      if (c.id === "c-1") throw new RangeError("Maximum call stack size exceeded");
    });
    const { redis, counts, delays, publish, drained } = setup({ handler, maxAttempts: 10 });
    publish(...Array.from({ length: 30 }, (_, n) => command(n)));
    await waitFor(() => handler.calls.length === 30, { message: "30 hand-overs" });
    await drained();

    expect(handler.calls).toEqual(ids(0, 30)); // c-1 tried once
    expect(handler.delivered).toEqual(ids(0, 30).filter((id) => id !== "c-1"));
    expect(redis.records(DEAD)).toEqual([
      {
        command: command(1),
        reason: "cannot be delivered: Maximum call stack size exceeded",
        code: "undeliverable",
        entry: "2-0",
        consumer: "gw-a",
        attempts: "1",
      },
    ]);
    expect(counts).toEqual({ delivered: 29, dead: 1, retried: 0 });
    expect(delays).toEqual([]); // nothing waited
  });

  it("a command that fails otherwise is retried in place, and a dead letter at maxAttempts with the last error", async () => {
    let failures = 0;
    const handler = recordingHandler((c) => {
      if (c.id === "c-1") throw new Error(`backplane hiccup ${++failures}`);
    });
    const { redis, counts, delays, publish, drained } = setup({ handler, maxAttempts: 3 });
    publish(command(0), command(1), command(2));
    await waitFor(() => handler.delivered.includes("c-2"), { message: "c-2" });
    await drained();

    expect(handler.calls).toEqual(["c-0", "c-1", "c-1", "c-1", "c-2"]);
    expect(redis.records(DEAD)).toEqual([
      {
        command: command(1),
        reason: "failed 3 times: backplane hiccup 3",
        code: "failed",
        entry: "2-0",
        consumer: "gw-a",
        attempts: "3",
      },
    ]);
    expect(counts).toEqual({ delivered: 2, dead: 1, retried: 2 });
    expect(delays).toHaveLength(2); // a pause before each retry
  });

  it("bad entries are dead letters with their reason, acknowledged with the rest in one transaction", async () => {
    const { redis, handler, publish, drained } = setup();
    publish(command(0), "[1,2]", '{"v":1,"event":');
    redis.xadd(STREAM, "something", "else");
    publish(command(4));
    await waitFor(() => handler.delivered.length === 2, { message: "the valid commands" });
    await drained();

    expect(handler.delivered).toEqual(["c-0", "c-4"]);
    const dead = redis.records(DEAD);
    expect(dead.map((d) => [d.entry, d.code])).toEqual([
      ["2-0", "invalid_command"],
      ["3-0", "invalid_json"],
      ["4-0", "invalid_command"],
    ]);
    expect(dead[2]?.reason).toBe("entry has no `command` field");
  });
});

describe("Redis ingest: readiness and close", () => {
  it("reads nothing while the gateway is not ready", async () => {
    let ready = false;
    const { redis, handler, publish, delays } = setup({ isReady: () => ready });
    publish(command(0));
    await waitFor(() => delays.length >= 3, { message: "readiness polled" });
    expect(redis.calls.filter((c) => c === "XREADGROUP")).toEqual([]);

    ready = true;
    await waitFor(() => handler.delivered.length === 1, { message: "c-0 once ready" });
  });

  it("stops reading once the gateway is no longer ready, leaving new entries to other consumers", async () => {
    let ready = true;
    const { redis, handler, publish, delays } = setup({ isReady: () => ready });
    publish(command(0));
    await waitFor(() => handler.delivered.length === 1, { message: "c-0" });

    ready = false; // a blocking read under way ends first
    await waitFor(() => delays.includes(250), { message: "readiness polled" });
    publish(command(1));
    const polls = delays.filter((ms) => ms === 250).length;
    await waitFor(() => delays.filter((ms) => ms === 250).length > polls, {
      message: "polled again",
    });
    expect(redis.pending(STREAM, GROUP).has("2-0")).toBe(false); // not read by anyone
    expect(handler.calls).toEqual(["c-0"]);

    ready = true;
    await waitFor(() => handler.delivered.length === 2, { message: "c-1 once ready again" });
  });

  it("close cuts a blocking read short and is idempotent", async () => {
    const { ingest, redis, handler, publish } = setup();
    publish(command(0));
    await waitFor(() => handler.delivered.length === 1, { message: "c-0" });
    await waitFor(() => redis.calls.at(-1) === "XREADGROUP", { message: "a blocking read" });
    await Promise.all([ingest.close(), ingest.close()]);
    const calls = redis.calls.length;
    publish(command(1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(redis.calls.length).toBe(calls);
    expect(handler.calls).toEqual(["c-0"]);
  });
});
