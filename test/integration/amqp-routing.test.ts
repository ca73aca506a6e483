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
    b.disconnect();
    await waitFor(() => cluster.adapter(1).stats().bindings === base - 1, {
      timeoutMs: 3_000,
      message: "socket id key unbound",
    });
  });
});

describe("amqp adapter: bad frames", () => {
  it("garbage and frames of another wire version are counted and dropped; the node keeps working", async () => {
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { roomRouting: true } });
    const client = await cluster.client(1);
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
    channel.publish(cluster.exchange, roomKey("/", client.id ?? ""), Buffer.from([1, 0xff, 0xff]));
    // Node 1 gets the 5 frames sent to every node and the one to its socket's key; node 0 the 5.
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
