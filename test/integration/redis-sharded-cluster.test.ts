import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { type PrivateRedisCluster, startPrivateRedisCluster } from "../support/redis-cluster.js";
import { drained, startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { waitFor } from "../support/wait.js";

/**
 * BACKPLANE=redis-sharded on a real Redis Cluster of 3 masters that this file starts from the
 * installed redis-server binary; each gateway is given a different seed node (REDIS_CLUSTER=on).
 */
describe("redis-sharded backplane on a 3-master Redis Cluster", () => {
  let cluster: PrivateRedisCluster;
  let gateways: GatewayProcess[];
  /** One plain connection per cluster node: PUBSUB SHARD* answers for its own node only. */
  let nodes: Redis[];

  beforeAll(async () => {
    cluster = await startPrivateRedisCluster({ masters: 3 });
    nodes = cluster.ports.map((port) => new Redis(port, "127.0.0.1"));
    gateways = await startGateways(3, (i) => ({
      BACKPLANE: "redis-sharded",
      REDIS_URL: cluster.urls[i]!,
      REDIS_CLUSTER: "on",
    }));
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
    for (const node of nodes ?? []) node.disconnect();
    await cluster?.stop();
  });
  afterEach(() => closeAllClients());

  /** The sharded adapter's channel for a room of the main namespace (subscriptionMode dynamic). */
  const roomChannel = (room: string) => `socket.io#/#${room}#`;

  /** Gateways subscribed to `channel`, summed over the cluster nodes. */
  const subscribers = async (channel: string) => {
    const counts = await Promise.all(
      nodes.map(async (node) => {
        const reply = (await node.call("PUBSUB", "SHARDNUMSUB", channel)) as [string, number];
        return Number(reply[1]);
      }),
    );
    return counts.reduce((sum, count) => sum + count, 0);
  };

  /** Whether any cluster node lists `channel` in PUBSUB SHARDCHANNELS. */
  const listed = async (channel: string) => {
    const lists = await Promise.all(
      nodes.map((node) => node.call("PUBSUB", "SHARDCHANNELS", channel) as Promise<string[]>),
    );
    return lists.flat().includes(channel);
  };

  it("reports ready on every gateway", async () => {
    for (const gateway of gateways) {
      expect(await (await fetch(`${gateway.url}/readyz`)).json()).toEqual({ status: "ready" });
    }
  });

  it("a publish to a room from gateway A reaches members on B and C, and no non-member", async () => {
    const room = uniqueRoom("chat");
    const [a, b, c] = gateways as [GatewayProcess, GatewayProcess, GatewayProcess];
    const sender = await connectClient(a.url);
    const members = await Promise.all([a, b, c].map((gateway) => connectClient(gateway.url)));
    const outsiders = await Promise.all([a, b, c].map((gateway) => connectClient(gateway.url)));
    expect((await Promise.all(members.map(whoami))).map((me) => me.gateway)).toEqual([
      "gw-0",
      "gw-1",
      "gw-2",
    ]);
    for (const member of members) expect(await request(member, "join", room)).toEqual({ ok: true });
    const got = {
      sender: collect(sender, "message"),
      members: members.map((member) => collect(member, "message")),
      outsiders: outsiders.map((outsider) => collect(outsider, "message")),
    };

    expect(
      await request(sender, "publish", { room, event: "message", data: { text: "hi" } }),
    ).toEqual({ ok: true });
    await waitFor(() => got.members.every((messages) => messages.length === 1), {
      message: "the members on A, B and C",
    });
    await Promise.all([sender, ...outsiders].map(drained));
    expect(got).toEqual({
      sender: [],
      members: [[{ text: "hi" }], [{ text: "hi" }], [{ text: "hi" }]],
      outsiders: [[], [], []],
    });
  });

  it("a gateway subscribes to a room's shard channel only while it has a member of the room", async () => {
    const room = uniqueRoom("dyn");
    const channel = roomChannel(room);
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const onA = await connectClient(a.url);
    const onB = await connectClient(b.url);
    expect(await listed(channel)).toBe(false);

    await request(onA, "join", room);
    await waitFor(async () => (await subscribers(channel)) === 1, { message: "A subscribed" });
    expect(await listed(channel)).toBe(true);

    await request(onB, "join", room);
    await waitFor(async () => (await subscribers(channel)) === 2, { message: "B subscribed" });

    await request(onA, "leave", room);
    await waitFor(async () => (await subscribers(channel)) === 1, { message: "A unsubscribed" });

    onB.disconnect();
    await waitFor(async () => (await subscribers(channel)) === 0, { message: "B unsubscribed" });
    expect(await listed(channel)).toBe(false);
  });

  it("a gateway without a member of the room still delivers the room's traffic it publishes", async () => {
    const room = uniqueRoom("far");
    const [a, , c] = gateways as [GatewayProcess, GatewayProcess, GatewayProcess];
    const member = await connectClient(c.url);
    await request(member, "join", room);
    const got = collect(member, "message");
    const sender = await connectClient(a.url);
    await request(sender, "publish", { room, event: "message", data: 1 });
    await waitFor(() => got.length === 1, { message: "the member on C" });
    expect(got).toEqual([1]);
  });
});
