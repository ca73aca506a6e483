import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import { PassThrough, Writable } from "node:stream";
import type { Channel } from "amqplib";
import { afterEach, describe, expect, it, vi } from "vitest";
import { muxFlusher, Outbox } from "../../adapters/amqp/outbox.js";
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

/**
 * amqplib's shape underneath a channel: `connection.channels[ch].buffer` queues the channel's
 * frames, `connection.muxer` lists queues in `newStreams` and writes them to `out`.
 */
function withMuxer(channel: FakeChannel) {
  const log: string[] = [];
  const queue = { name: "channel 1's queue" };
  const out = new Writable({ write: (_chunk, _enc, done) => done() });
  out.cork = () => void log.push("cork");
  out.uncork = () => void log.push("uncork");
  const muxer = {
    out,
    newStreams: [] as unknown[],
    _readIncoming(this: unknown) {
      const listed = muxer.newStreams.includes(queue) ? "listed" : "not listed";
      log.push(this === muxer ? `read ${listed} after ${channel.sent.length}` : "wrong this");
      muxer.newStreams = []; // the mux drops what it read empty (and replaces the array at times)
    },
  };
  Object.assign(channel, { ch: 1, connection: { muxer, channels: [null, { buffer: queue }] } });
  return { log, muxer };
}

describe("amqp outbox: when frames leave for the broker", () => {
  it("hands each publish to amqplib's socket writer at once, its queue listed, the socket corked", () => {
    const { outbox, channel, open } = setup();
    const { log } = withMuxer(channel);
    open();
    void outbox.send("k1", frame);
    expect(log).toEqual(["cork", "read listed after 1", "uncork"]);
    void outbox.send("k2", frame);
    expect(log.slice(3)).toEqual(["cork", "read listed after 2", "uncork"]);
  });

  it("writes what waited for setup as soon as the channel opens", () => {
    const { outbox, channel, open } = setup();
    const { log } = withMuxer(channel);
    void outbox.send("early", frame);
    expect(log).toEqual([]);
    open();
    expect(log).toEqual(["cork", "read listed after 1", "uncork"]);
  });

  it("falls back to amqplib's own schedule, with a warning, if its writer throws", async () => {
    const { outbox, channel, counters, open } = setup();
    const { log, muxer } = withMuxer(channel);
    muxer._readIncoming = () => {
      log.push("read");
      throw new Error("amqplib changed");
    };
    open();
    await outbox.send("k1", frame);
    await outbox.send("k2", frame);
    expect(log.filter((l) => l === "read")).toHaveLength(1);
    expect(channel.sent).toEqual(["k1", "k2"]);
    expect(counters).toEqual({ published: 2, dropped: 0 });
  });

  it("leaves frames to amqplib's own schedule on a channel without its internals", async () => {
    const { outbox, channel, counters, open } = setup();
    expect(muxFlusher(channel as unknown as Channel)).toBeUndefined();
    open();
    await outbox.send("k1", frame);
    expect(channel.sent).toEqual(["k1"]);
    expect(counters).toEqual({ published: 1, dropped: 0 });
  });
});

describe("amqp outbox: with amqplib's own writer underneath", () => {
  /** amqplib's Mux (lib/mux.js, not exported): what writes every channel's queue to the socket. */
  const require = createRequire(import.meta.url);
  const muxPath = require.resolve("amqplib").replace(/channel_api\.js$/, "lib/mux.js");
  const { Mux } = require(muxPath) as { Mux: new (out: Writable) => { _readIncoming(): void } };

  it("a backlog after a slow broker socket leaves in publish order, and amqplib's writer is never entered twice", async () => {
    // A broker socket that takes one frame at a time, and channel queues as small as they go:
    // the publishing channel fills, publish() says wait, publishes queue in the outbox.
    const held: Array<() => void> = [];
    const written: string[] = [];
    const socket = new Writable({
      objectMode: true,
      highWaterMark: 1,
      write(chunk, _enc, done) {
        written.push(String(chunk));
        held.push(done);
      },
    });
    const muxer = new Mux(socket);
    let depth = 0;
    let reentered = 0;
    const readIncoming = muxer._readIncoming;
    muxer._readIncoming = function (this: unknown) {
      if (++depth > 1) reentered++;
      try {
        readIncoming.call(this);
      } finally {
        depth--;
      }
    };
    const publishing = new PassThrough({ objectMode: true, highWaterMark: 1 });
    const topology = new PassThrough({ objectMode: true, highWaterMark: 1 });
    (muxer as unknown as { pipeFrom(s: PassThrough): void }).pipeFrom(publishing);
    (muxer as unknown as { pipeFrom(s: PassThrough): void }).pipeFrom(topology);
    const channel = Object.assign(new EventEmitter(), {
      ch: 1,
      connection: { muxer, channels: [null, { buffer: publishing }, { buffer: topology }] },
      publish: (_exchange: string, key: string) => publishing.write(key),
    });
    publishing.on("drain", () => channel.emit("drain")); // as amqplib's channel does
    const counters = { published: 0, dropped: 0 };
    const outbox = new Outbox(
      {
        exchange: "x",
        publishTimeoutMs: 60_000,
        maxPendingPublishes: 1_000,
        logger: recordingLogger(),
      },
      counters,
    );
    outbox.open(channel as unknown as Channel);
    const sent: string[] = [];
    for (let i = 0; i < 60; i++) {
      sent.push(`p${i}`);
      void outbox.send(`p${i}`, frame);
      topology.write(`t${i}`); // the other channel's frames, interleaved by the mux
    }
    // The socket takes one frame per turn until everything is out (bounded).
    for (let turn = 0; turn < 5_000 && written.filter((w) => w[0] === "p").length < 60; turn++) {
      held.shift()?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(written.filter((w) => w[0] === "p")).toEqual(sent);
    expect(counters).toEqual({ published: 60, dropped: 0 });
    expect(reentered).toBe(0);
  });
});
