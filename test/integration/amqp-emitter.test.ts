import amqp from "amqplib";
import { describe, expect, it, onTestFinished } from "vitest";
import { AmqpEmitter } from "../../adapters/amqp/index.js";
import { type AmqpCluster, nextEvent, startAmqpCluster } from "../support/amqp-helpers.js";
import { amqpUrl } from "../support/brokers.js";
import { waitFor } from "../support/wait.js";

async function emitterFor(cluster: AmqpCluster): Promise<AmqpEmitter> {
  const connection = await amqp.connect(await amqpUrl());
  const emitter = new AmqpEmitter(connection, { exchange: cluster.exchange });
  onTestFinished(async () => {
    await emitter.close();
    await connection.close();
  });
  return emitter;
}

describe("AmqpEmitter against 3 servers", () => {
  it("emits to all clients, to rooms, with except, and to other namespaces", async () => {
    const cluster = await startAmqpCluster({ namespaces: ["/chat"] });
    const emitter = await emitterFor(cluster);
    const clients = await Promise.all([0, 1, 2].map((i) => cluster.client(i)));
    const chat = await cluster.client(1, "/chat");
    await cluster.servers[2]
      ?.of("/")
      .sockets.get(clients[2]?.id ?? "")
      ?.join("R");
    await cluster.servers[1]
      ?.of("/")
      .sockets.get(clients[1]?.id ?? "")
      ?.join("R");

    const all = clients.map((c) => nextEvent(c, "all"));
    expect(emitter.emit("all", 1, Buffer.from([9, 8]))).toBe(true);
    expect(await Promise.all(all)).toEqual([1, 1, 1]);

    const room = nextEvent(clients[2] ?? chat, "room");
    let wrong = 0;
    clients[0]?.on("room", () => wrong++);
    clients[1]?.on("room", () => wrong++);
    emitter
      .to("R")
      .except(clients[1]?.id ?? "")
      .emit("room", "r");
    expect(await room).toBe("r");

    const ns = nextEvent(chat, "ns");
    emitter.of("/chat").emit("ns", "chat");
    expect(await ns).toBe("chat");

    const sentinel = clients.map((c) => nextEvent(c, "sentinel"));
    emitter.emit("sentinel");
    await Promise.all(sentinel);
    expect(wrong).toBe(0);
    expect(await cluster.adapter(0).serverCount()).toBe(3); // the emitter is no node
  });

  it("binary arguments reach clients byte-exact", async () => {
    const cluster = await startAmqpCluster({ nodes: 2 });
    const emitter = await emitterFor(cluster);
    const client = await cluster.client(1);
    const got = nextEvent<Buffer>(client, "bin");
    emitter.emit("bin", Buffer.from([0, 255, 1, 254]));
    expect(Buffer.from(await got)).toEqual(Buffer.from([0, 255, 1, 254]));
  });

  it("makes sockets join and leave rooms, and disconnects them, on every server", async () => {
    const cluster = await startAmqpCluster();
    const emitter = await emitterFor(cluster);
    const clients = await Promise.all([0, 1, 2].map((i) => cluster.client(i)));
    emitter.socketsJoin("joined");
    await waitFor(() =>
      cluster.servers.every((s) => s.of("/").adapter.rooms.get("joined")?.size === 1),
    );
    emitter
      .in("joined")
      .except(clients[0]?.id ?? "")
      .socketsLeave("joined");
    await waitFor(
      () => cluster.servers.filter((s) => s.of("/").adapter.rooms.has("joined")).length === 1,
    );
    const [first] = clients;
    if (!first) throw new Error("no client");
    const gone = nextEvent(first, "disconnect");
    emitter.in("joined").disconnectSockets();
    await gone;
    expect(clients[1]?.connected && clients[2]?.connected).toBe(true);
  });

  it("an emit right behind a socketsJoin reaches the new members on every server", async () => {
    const cluster = await startAmqpCluster();
    const emitter = await emitterFor(cluster);
    const clients = await Promise.all([0, 1, 2].map((i) => cluster.client(i)));
    const got = clients.map((c) => nextEvent(c, "welcome"));
    emitter.socketsJoin("fresh");
    emitter.to("fresh").emit("welcome", 1);
    expect(await Promise.all(got)).toEqual([1, 1, 1]);
  });

  it("with room routing on, reaches a socket id right after connect, and disconnects by id", async () => {
    const cluster = await startAmqpCluster({ adapter: { roomRouting: true } });
    const emitter = await emitterFor(cluster);
    const base = cluster.adapter(1).stats().bindings;
    const client = await cluster.client(1);
    const other = await cluster.client(2);
    const got = nextEvent(client, "private");
    emitter.to(client.id ?? "").emit("private", "psst");
    expect(await got).toBe("psst");
    expect(cluster.adapter(1).stats().bindings).toBe(base); // no key of its own
    let otherGot = 0;
    other.on("everyone-else", () => otherGot++);
    const seen = nextEvent(client, "everyone-else");
    emitter.except(other.id ?? "").emit("everyone-else", 1);
    await seen;
    const sentinel = nextEvent(other, "sentinel");
    emitter.emit("sentinel"); // same channel, same queue: after "everyone-else"
    await sentinel;
    expect(otherGot).toBe(0);
    const gone = nextEvent(other, "disconnect");
    emitter.in(other.id ?? "").disconnectSockets(true);
    await gone;
    expect(client.connected).toBe(true);
  });

  it("serverSideEmit reaches every server; acks and reserved events are refused", async () => {
    const cluster = await startAmqpCluster();
    const emitter = await emitterFor(cluster);
    const seen: unknown[] = [];
    for (const s of cluster.servers) s.on("hello", (v: unknown) => seen.push(v));
    emitter.serverSideEmit("hello", "servers");
    await waitFor(() => seen.length === 3);
    expect(() => emitter.serverSideEmit("hello", () => undefined)).toThrowError(
      expect.objectContaining({ code: "SWB_ERR_INVALID_ARGUMENT" }),
    );
    expect(() => emitter.emit("connect")).toThrowError(
      expect.objectContaining({ code: "SWB_ERR_INVALID_ARGUMENT" }),
    );
  });

  it("reaches room members when the servers run in fan-out mode", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: false } });
    const emitter = await emitterFor(cluster);
    const client = await cluster.client(1);
    await cluster.servers[1]
      ?.of("/")
      .sockets.get(client.id ?? "")
      ?.join("F");
    const got = nextEvent(client, "f");
    emitter.to(["F", "G"]).emit("f", 2);
    expect(await got).toBe(2);
  });

  it.each([true, false])(
    "targets numeric rooms, as Socket.IO rooms may be numbers (roomRouting %s)",
    async (roomRouting) => {
      const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting } });
      const emitter = await emitterFor(cluster);
      const [member, other] = [await cluster.client(1), await cluster.client(0)];
      // Socket.IO's typings say string; at run time a number is a room of its own.
      await cluster.servers[1]
        ?.of("/")
        .sockets.get(member.id ?? "")
        ?.join(42 as unknown as string);
      const toMember = nextEvent(member, "to-42");
      const toOther = nextEvent(other, "except-42");
      emitter.to(42).emit("to-42", 1);
      emitter.except(42).emit("except-42", 2);
      expect(await toMember).toBe(1);
      expect(await toOther).toBe(2);
      emitter.in(42).socketsJoin(7);
      await waitFor(
        () =>
          cluster.servers[1]
            ?.of("/")
            .sockets.get(member.id ?? "")
            ?.rooms.has(7 as unknown as string) === true,
        { timeoutMs: 5_000, message: "joined numeric room 7" },
      );
    },
  );
});
