import { EventEmitter } from "node:events";
import { RedisAdapter } from "@socket.io/redis-adapter";
import type { Namespace } from "socket.io";
import { afterEach, describe, expect, it, vi } from "vitest";
import { EchoFreeRedisAdapter } from "../../adapters/redis/classic.js";
import type { RedisClient } from "../../adapters/redis/connection.js";

/**
 * An in-process stand-in for Redis pub/sub: every PUBLISH reaches every subscribed client as a
 * `pmessageBuffer` event, the publisher's own subscriber included, as Redis does.
 */
function fakeRedis() {
  const subscribers: EventEmitter[] = [];
  const client = () => {
    const c = Object.assign(new EventEmitter(), {
      psubscribe: () => Promise.resolve(1),
      subscribe: () => Promise.resolve(1),
      publish: (channel: string, msg: Buffer) => {
        for (const s of subscribers)
          s.emit("pmessageBuffer", Buffer.from("socket.io#/#*"), Buffer.from(channel), msg);
        return Promise.resolve(subscribers.length);
      },
    });
    return c;
  };
  return {
    node(): { pub: RedisClient; sub: RedisClient } {
      const sub = client();
      subscribers.push(sub);
      return { pub: client() as unknown as RedisClient, sub: sub as unknown as RedisClient };
    },
  };
}

/** A namespace with what the adapters touch: a name, no sockets. */
const namespace = () =>
  ({
    name: "/",
    sockets: new Map(),
    server: { encoder: { encode: (p: unknown) => [p] } },
  }) as unknown as Namespace;

/** Spies on what a node does with a broadcast it receives: decode it, deliver it locally. */
function watch(adapter: RedisAdapter) {
  const decode = vi.spyOn(adapter.parser, "decode");
  const deliver = vi.spyOn(Object.getPrototypeOf(RedisAdapter.prototype), "broadcast");
  return { decode, deliver };
}

describe("the classic Redis adapter drops its own broadcasts before decoding them", () => {
  // The adapters share one parser and one base class: their spies are undone after each test.
  afterEach(() => {
    vi.restoreAllMocks();
  });
  const broadcast = (adapter: RedisAdapter, room: string) =>
    adapter.broadcast(
      { type: 2, data: ["news", { n: 1 }], nsp: "/" },
      {
        rooms: new Set([room]),
        except: new Set(),
        flags: {},
      },
    );

  it("a node does not decode a broadcast it published itself, and does not deliver it twice", () => {
    const redis = fakeRedis();
    const a = redis.node();
    const adapter = new EchoFreeRedisAdapter(namespace(), a.pub, a.sub) as unknown as RedisAdapter;
    adapter.addAll("socket-1", new Set(["room-1"]));
    const { decode, deliver } = watch(adapter);
    broadcast(adapter, "room-1");
    expect(decode).not.toHaveBeenCalled();
    // The local delivery of the broadcast itself, none for its echo.
    expect(deliver).toHaveBeenCalledTimes(1);
  });

  it("a broadcast from another node is decoded and delivered to this node's members", () => {
    const redis = fakeRedis();
    const a = redis.node();
    const b = redis.node();
    const sender = new EchoFreeRedisAdapter(namespace(), a.pub, a.sub) as unknown as RedisAdapter;
    const receiver = new EchoFreeRedisAdapter(namespace(), b.pub, b.sub) as unknown as RedisAdapter;
    receiver.addAll("socket-2", new Set(["room-1"]));
    const { decode, deliver } = watch(receiver);
    broadcast(sender, "room-1");
    expect(decode).toHaveBeenCalledTimes(1);
    const delivered = deliver.mock.calls.find(([, opts]) =>
      (opts as { rooms: Set<string> }).rooms.has("room-1"),
    );
    expect(delivered?.[0]).toMatchObject({ type: 2, data: ["news", { n: 1 }] });
  });

  it("a node with the official adapter still receives this node's broadcasts (same wire format)", () => {
    const redis = fakeRedis();
    const a = redis.node();
    const b = redis.node();
    const sender = new EchoFreeRedisAdapter(namespace(), a.pub, a.sub) as unknown as RedisAdapter;
    const official = new RedisAdapter(namespace(), b.pub, b.sub);
    official.addAll("socket-3", new Set(["room-1"]));
    const { decode } = watch(official);
    broadcast(sender, "room-1");
    expect(decode).toHaveBeenCalledTimes(1);
    const [uid, packet] = (decode.mock.results[0]?.value ?? []) as [string?, unknown?];
    expect(uid).toBe(sender.uid);
    expect(packet).toEqual({ type: 2, data: ["news", { n: 1 }], nsp: "/" });
  });
});
