import { EventEmitter } from "node:events";
import type { Channel } from "amqplib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Outbox } from "../../adapters/amqp/outbox.js";
import { recordingLogger } from "../support/amqp-helpers.js";

/** A channel whose publish() says "pause" while `full` is true. */
class FakeChannel extends EventEmitter {
  full = false;
  readonly sent: string[] = [];
  publish(_exchange: string, key: string): boolean {
    this.sent.push(key);
    return !this.full;
  }
}

function setup(max = 3) {
  const counters = { published: 0, dropped: 0 };
  const outbox = new Outbox(
    { exchange: "x", publishTimeoutMs: 1_000, maxPendingPublishes: max, logger: recordingLogger() },
    counters,
  );
  const channel = new FakeChannel();
  return { outbox, channel, counters, open: () => outbox.open(channel as unknown as Channel) };
}

const frame = Buffer.from([1]);

describe("amqp outbox: back-pressure and bounds", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("waits for 'drain' after publish() returns false, then sends in order", async () => {
    const { outbox, channel, counters, open } = setup();
    open();
    channel.full = true;
    await outbox.send("k1", frame);
    channel.full = false;
    const later = [outbox.send("k2", frame), outbox.send("k3", frame)];
    expect(channel.sent).toEqual(["k1"]);
    channel.emit("drain");
    await Promise.all(later);
    expect(channel.sent).toEqual(["k1", "k2", "k3"]);
    expect(counters).toEqual({ published: 3, dropped: 0 });
  });

  it("drops and counts beyond maxPendingPublishes instead of buffering without bound", async () => {
    const { outbox, channel, counters, open } = setup(2);
    open();
    channel.full = true;
    await outbox.send("k0", frame);
    void outbox.send("k1", frame);
    void outbox.send("k2", frame);
    await outbox.send("k3", frame); // over the bound: resolved at once, dropped
    expect(counters.dropped).toBe(1);
    outbox.lost();
    expect(counters.dropped).toBe(3);
  });

  it("drops what waited longer than publishTimeoutMs", async () => {
    vi.useFakeTimers();
    const { outbox, counters } = setup();
    const waiting = outbox.send("before-setup", frame);
    vi.advanceTimersByTime(1_001);
    await waiting;
    expect(counters).toEqual({ published: 0, dropped: 1 });
  });

  it("holds publishes until the first setup, but drops at once during a later outage", async () => {
    const { outbox, channel, counters, open } = setup();
    const early = outbox.send("early", frame);
    open();
    await early;
    expect(channel.sent).toEqual(["early"]);
    outbox.lost();
    await outbox.send("during-outage", frame);
    expect(counters).toEqual({ published: 1, dropped: 1 });
  });
});
