import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterEach, describe, expect, it } from "vitest";
import { writePerTick } from "../../adapters/redis/connection.js";
import { redisUrl } from "../support/brokers.js";
import { waitFor } from "../support/wait.js";

/** The socket.write calls a client makes, counted on its current socket. */
function countWrites(client: Redis): { writes: number } {
  const counter = { writes: 0 };
  const stream = client.stream as unknown as { _write: unknown; _writev: unknown };
  for (const method of ["_write", "_writev"] as const) {
    const original = stream[method] as (...args: unknown[]) => unknown;
    stream[method] = function (this: unknown, ...args: unknown[]) {
      counter.writes += 1;
      return original.apply(this, args);
    };
  }
  return counter;
}

const nextTick = () => new Promise<void>((resolve) => process.nextTick(resolve));

describe("writePerTick: the commands of one tick in at most two socket writes (real Redis)", () => {
  const clients: Redis[] = [];
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((client) => client.quit().catch(() => undefined)));
  });

  async function client(): Promise<Redis> {
    const redis = new Redis(await redisUrl(), { lazyConnect: true });
    clients.push(redis);
    await redis.connect();
    return redis;
  }

  it("sends a burst of 200 PUBLISHes in two writes (the first, then the rest), in order, and each reaches the subscriber", async () => {
    const channel = `sb-test:${randomUUID()}`;
    const sub = await client();
    const received: string[] = [];
    sub.on("message", (_channel: string, message: string) => received.push(message));
    await sub.subscribe(channel);
    const pub = await client();
    writePerTick(pub);
    const counter = countWrites(pub);

    const replies = Array.from({ length: 200 }, (_, i) => pub.publish(channel, String(i)));
    await Promise.all(replies);

    expect(counter.writes).toBe(2);
    await waitFor(() => received.length === 200, { timeoutMs: 5000 });
    expect(received).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  it("writes the first command of a tick at once, before the caller's next statement", async () => {
    const pub = await client();
    writePerTick(pub);
    const counter = countWrites(pub);
    const reply = pub.publish(`sb-test:${randomUUID()}`, "x");
    // Already handed to the socket: a broadcast's PUBLISH leaves before the node's local writes.
    expect(counter.writes).toBe(1);
    expect(pub.stream.writableLength).toBe(0);
    // The rest of the tick is corked behind it...
    pub.publish(`sb-test:${randomUUID()}`, "y");
    expect(pub.stream.writableCorked).toBe(1);
    expect(pub.stream.writableLength).toBeGreaterThan(0);
    await nextTick();
    // ...and handed to the kernel before any I/O or timer callback of the loop could run.
    expect(pub.stream.writableCorked).toBe(0);
    expect(pub.stream.writableLength).toBe(0);
    expect(counter.writes).toBe(2);
    await expect(reply).resolves.toBe(0);
  });

  it("without it, each command of a burst is a write of its own (what it saves)", async () => {
    const channel = `sb-test:${randomUUID()}`;
    const pub = await client();
    const counter = countWrites(pub);
    await Promise.all(Array.from({ length: 50 }, (_, i) => pub.publish(channel, String(i))));
    expect(counter.writes).toBeGreaterThan(1);
  });
});
