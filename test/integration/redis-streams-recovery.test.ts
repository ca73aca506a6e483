import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "../support/redis-server.js";
import { nextEvent, waitFor } from "../support/wait.js";

/**
 * BACKPLANE=redis-streams turns on Socket.IO connection state recovery: the session of a client
 * whose connection dropped is kept in Redis, and the stream holds what was broadcast meanwhile.
 * A private redis-server keeps this file's stream and sessions apart from other tests.
 */
describe("redis-streams backplane: connection state recovery", () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let gateways: GatewayProcess[];

  beforeAll(async () => {
    redis = await startPrivateRedis();
    admin = new Redis(redis.url);
    gateways = await startGateways(2, () => ({
      BACKPLANE: "redis-streams",
      REDIS_URL: redis.url,
    }));
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
    admin?.disconnect();
    await redis?.stop();
  });
  afterEach(() => closeAllClients());

  it("a client that drops and comes back within the window gets the messages it missed and its rooms", async () => {
    const [a, b] = gateways as [GatewayProcess, GatewayProcess];
    const room = uniqueRoom("csr");
    const client = await connectClient(a.url, { reconnection: true, reconnectionDelay: 100 });
    const publisher = await connectClient(b.url);
    expect(await request(client, "join", room)).toEqual({ ok: true });
    const got = collect(client, "message");
    const before = await whoami(client);

    // A first delivery gives the client an offset in the stream to recover from.
    await request(publisher, "publish", { room, event: "message", data: 1 });
    await waitFor(() => got.length === 1, { message: "the first message" });

    // Drop the transport (as a network cut would) and stay away until the others published.
    client.io.reconnection(false);
    const disconnected = nextEvent(client, "disconnect");
    client.io.engine.close();
    await disconnected;
    await waitFor(async () => (await admin.keys("sio:session:*")).length > 0, {
      message: "gateway A kept the session in Redis",
    });
    for (const n of [2, 3]) {
      expect(await request(publisher, "publish", { room, event: "message", data: n })).toEqual({
        ok: true,
      });
    }

    client.io.reconnection(true);
    const reconnected = nextEvent(client, "connect");
    client.connect();
    await reconnected;
    expect(client.recovered).toBe(true);
    await waitFor(() => got.length === 3, { message: "the missed messages" });
    expect(got).toEqual([1, 2, 3]);
    expect(await whoami(client)).toEqual({ ...before, rooms: [room] });

    // And it is a member again: live traffic flows as before.
    await request(publisher, "publish", { room, event: "message", data: 4 });
    await waitFor(() => got.length === 4, { message: "a live message after recovery" });
    expect(got).toEqual([1, 2, 3, 4]);
  });

  it("a client that reconnects without a session it can recover starts afresh, without its rooms", async () => {
    const [a] = gateways as [GatewayProcess];
    const room = uniqueRoom("fresh");
    const client = await connectClient(a.url);
    await request(client, "join", room);
    client.disconnect(); // a deliberate disconnect: the session is not kept
    const again = await connectClient(a.url);
    expect(again.recovered).toBe(false);
    expect((await whoami(again)).rooms).toEqual([]);
  });
});
