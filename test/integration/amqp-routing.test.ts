import { encode } from "@msgpack/msgpack";
import amqp from "amqplib";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it, onTestFinished } from "vitest";
import { allKey, roomKey } from "../../adapters/amqp/routing.js";
import { nextEvent, startAmqpCluster } from "../support/amqp-helpers.js";
import { amqpUrl } from "../support/brokers.js";
import { waitFor } from "../support/wait.js";

async function roomTraffic(roomRouting: boolean): Promise<{ member: number; bystander: number }> {
  const cluster = await startAmqpCluster({ adapter: { roomRouting } });
  const c1 = await cluster.client(1);
  const c2 = await cluster.client(2);
  await cluster.servers[1]
    ?.of("/")
    .sockets.get(c1.id ?? "")
    ?.join("R");
  const before = [
    cluster.adapter(1).stats().receivedBroadcasts,
    cluster.adapter(2).stats().receivedBroadcasts,
  ];
  let got = 0;
  c1.on("r", () => got++);
  for (let i = 0; i < 20; i++) cluster.servers[0]?.to("R").emit("r", i);
  await waitFor(() => got === 20, { timeoutMs: 5_000, message: "member got 20 room messages" });
  // Messages from one channel reach a queue in order: once the bystander's
  // client sees this broadcast, every earlier one was routed (or not) to it.
  const sentinels = [nextEvent(c1, "sentinel"), nextEvent(c2 as ClientSocket, "sentinel")];
  cluster.servers[0]?.emit("sentinel");
  await Promise.all(sentinels);
  return {
    member: cluster.adapter(1).stats().receivedBroadcasts - (before[0] ?? 0),
    bystander: cluster.adapter(2).stats().receivedBroadcasts - (before[1] ?? 0),
  };
}

describe("amqp adapter: room routing", () => {
  it("a node with no member of room R receives no message for R from the broker", async () => {
    const { member, bystander } = await roomTraffic(true);
    expect(member).toBe(21);
    expect(bystander).toBe(1); // only the broadcast to all
  });

  it("in fan-out mode every node receives every room message", async () => {
    const { member, bystander } = await roomTraffic(false);
    expect(member).toBe(21);
    expect(bystander).toBe(21);
  });

  it("a room's key is bound on the first local member and unbound when the last leaves", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: true } });
    const [a, b] = [await cluster.client(1), await cluster.client(1)];
    const sockets = cluster.servers[1]?.of("/").sockets;
    const base = cluster.adapter(1).stats().bindings;
    await sockets?.get(a.id ?? "")?.join("topic");
    await sockets?.get(b.id ?? "")?.join("topic");
    expect(cluster.adapter(1).stats().bindings).toBe(base + 1);
    await sockets?.get(a.id ?? "")?.leave("topic");
    expect(cluster.adapter(1).stats().bindings).toBe(base + 1);
    await sockets?.get(b.id ?? "")?.leave("topic");
    await waitFor(() => cluster.adapter(1).stats().bindings === base, {
      timeoutMs: 3_000,
      message: "room key unbound",
    });
  });
});

describe("amqp adapter: socket ids with room routing on", () => {
  it("a connection binds no key of its own; an emit to its id from another node arrives right after connect", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: true } });
    const base = cluster.adapter(1).stats().bindings;
    const clients: ClientSocket[] = [];
    for (let i = 0; i < 5; i++) {
      const client = await cluster.client(1);
      clients.push(client);
      // The client has its id: another node's emit to it must not miss it.
      const got = nextEvent(client, "private");
      cluster.servers[0]?.to(client.id ?? "").emit("private", i);
      expect(await got).toBe(i);
    }
    expect(cluster.adapter(1).stats().bindings).toBe(base);
    for (const c of clients) c.disconnect();
    await waitFor(() => cluster.servers[1]?.of("/").sockets.size === 0, {
      timeoutMs: 5_000,
      message: "node 1 saw every disconnect",
    });
    expect(cluster.adapter(1).stats().bindings).toBe(base);
  });

  it("socketsJoin, except and disconnectSockets by socket id reach the socket on another node", async () => {
    const cluster = await startAmqpCluster({ nodes: 3, adapter: { roomRouting: true } });
    const c1 = await cluster.client(1);
    const c2 = await cluster.client(2);
    const [id1, id2] = [c1.id ?? "", c2.id ?? ""];
    const base = cluster.adapter(1).stats().bindings;

    cluster.servers[0]?.in(id1).socketsJoin("team");
    await waitFor(() => cluster.servers[1]?.of("/").adapter.rooms.get("team")?.has(id1) === true, {
      timeoutMs: 5_000,
      message: "the socket on node 1 joined 'team'",
    });
    expect(cluster.adapter(1).stats().bindings).toBe(base + 1); // 'team', a named room, is bound
    expect(cluster.servers[2]?.of("/").adapter.rooms.has("team")).toBe(false);

    // To 'team' and to c2's id, except c1's id: only c2 gets it.
    let c1Got = 0;
    c1.on("x", () => c1Got++);
    const c2Got = nextEvent(c2, "x");
    cluster.servers[0]?.to(["team", id2]).except(id1).emit("x", 1);
    expect(await c2Got).toBe(1);
    const sentinel = nextEvent(c1, "sentinel");
    cluster.servers[0]?.to(id1).emit("sentinel"); // same channel, same queue: after "x"
    await sentinel;
    expect(c1Got).toBe(0);

    const gone = nextEvent(c2, "disconnect");
    cluster.servers[0]?.in(id2).disconnectSockets(true);
    await gone;
    expect(c1.connected).toBe(true);
  });

  it("a node's own room broadcasts come back from the broker and are dropped undecoded; its clients get each once", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: true } });
    const local = await cluster.client(0);
    const remote = await cluster.client(1);
    for (const [node, client] of [
      [0, local],
      [1, remote],
    ] as const)
      await cluster.servers[node]
        ?.of("/")
        .sockets.get(client.id ?? "")
        ?.join("R");
    const before = cluster.adapter(0).stats();
    const got = { local: 0, remote: 0 };
    local.on("r", () => got.local++);
    remote.on("r", () => got.remote++);
    for (let i = 0; i < 10; i++) cluster.servers[0]?.to("R").emit("r", i);
    await waitFor(() => got.remote === 10, { timeoutMs: 5_000, message: "remote member got 10" });
    await waitFor(() => cluster.adapter(0).stats().received - before.received >= 10, {
      timeoutMs: 5_000,
      message: "node 0's own 10 broadcasts back from the broker",
    });
    expect(cluster.adapter(0).stats().receivedBroadcasts).toBe(before.receivedBroadcasts);
    expect(cluster.adapter(0).stats().decodeErrors).toBe(0);
    expect(got).toEqual({ local: 10, remote: 10 });
  });

  it("the cost: an emit to one socket id reaches every node's queue", async () => {
    const cluster = await startAmqpCluster({ nodes: 3, adapter: { roomRouting: true } });
    const c1 = await cluster.client(1);
    const c2 = await cluster.client(2);
    const before = cluster.adapter(2).stats().receivedBroadcasts;
    const got = nextEvent(c1, "one");
    cluster.servers[0]?.to(c1.id ?? "").emit("one", 1);
    await got;
    const sentinel = nextEvent(c2, "sentinel");
    cluster.servers[0]?.emit("sentinel");
    await sentinel;
    expect(cluster.adapter(2).stats().receivedBroadcasts - before).toBe(2);
  });
});

describe("amqp adapter: bad frames", () => {
  it("garbage and frames of another wire version are counted and dropped; the node keeps working", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: true } });
    const client = await cluster.client(1);
    await cluster.servers[1]
      ?.of("/")
      .sockets.get(client.id ?? "")
      ?.join("bad");
    const connection = await amqp.connect(await amqpUrl());
    onTestFinished(() => connection.close());
    const channel = await connection.createChannel();
    const frames = [
      Buffer.from("definitely not msgpack"),
      Buffer.concat([
        Buffer.from([2]),
        Buffer.from(encode({ uid: "x", nsp: "/", type: 3, data: {} })),
      ]),
      Buffer.concat([Buffer.from([1]), Buffer.from(encode([1, 2, 3]))]),
      Buffer.concat([Buffer.from([1]), Buffer.from([0xc1])]), // never-used msgpack byte
      Buffer.alloc(0),
    ];
    for (const frame of frames) channel.publish(cluster.exchange, allKey("/"), frame);
    channel.publish(cluster.exchange, roomKey("/", "bad"), Buffer.from([1, 0xff, 0xff]));
    // Node 1 gets the 5 frames sent to every node and the one to its room's key; node 0 the 5.
    await waitFor(
      () =>
        cluster.adapter(1).stats().decodeErrors === 6 &&
        cluster.adapter(0).stats().decodeErrors === 5,
      { timeoutMs: 5_000, message: "6 and 5 decode errors counted" },
    );
    const got = nextEvent(client, "still");
    cluster.servers[0]?.emit("still", "alive");
    expect(await got).toBe("alive");
  });
});
