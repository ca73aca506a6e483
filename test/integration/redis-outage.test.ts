import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, collect, connectClient, request } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { errorLines, readyz, startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "../support/redis-server.js";
import { waitFor } from "../support/wait.js";

/**
 * Redis goes away and comes back (a private redis-server the test stops and starts again on the
 * same port). Broadcasts are at-most-once: what is published while Redis is away reaches the
 * sender's own gateway only, and is dropped for the others — never queued and replayed later.
 */
describe.each(["redis", "redis-sharded", "redis-streams"])(
  "BACKPLANE=%s when Redis is lost",
  (backplane) => {
    let redis: PrivateRedis;
    let a: GatewayProcess;
    let b: GatewayProcess;
    let sender: Socket;
    let neighbour: Socket;
    let remote: Socket;
    const room = uniqueRoom("outage");
    const got = { neighbour: [] as unknown[], remote: [] as unknown[] };
    const publish = (data: unknown) => request(sender, "publish", { room, event: "message", data });

    beforeAll(async () => {
      redis = await startPrivateRedis();
      [a, b] = (await startGateways(2, () => ({ BACKPLANE: backplane, REDIS_URL: redis.url }))) as [
        GatewayProcess,
        GatewayProcess,
      ];
      // reconnection off: a client must stay on its gateway, whatever happens to Redis.
      [sender, neighbour, remote] = await Promise.all([
        connectClient(a.url),
        connectClient(a.url),
        connectClient(b.url),
      ]);
      for (const socket of [sender, neighbour, remote]) await request(socket, "join", room);
      got.neighbour = collect(neighbour, "message");
      got.remote = collect(remote, "message");
    });
    afterAll(async () => {
      closeAllClients();
      await Promise.all([a?.stop(), b?.stop()]);
      await redis?.stop();
    });

    afterEach((context) => {
      // Every step leaves both gateways running and without errors in their logs.
      if (context.task.result?.state === "fail") return;
      for (const gateway of [a, b]) {
        expect(gateway.isRunning()).toBe(true);
        expect(errorLines(gateway)).toEqual([]);
      }
    });

    it("delivers across gateways while Redis is up", async () => {
      await publish("before");
      await waitFor(() => got.remote.length === 1, { message: "the remote member" });
      await waitFor(() => got.neighbour.length === 1, { message: "the neighbour" });
    });

    it("reports not ready, with the reason, while Redis is away", async () => {
      await redis.pause();
      for (const gateway of [a, b]) {
        await waitFor(async () => (await readyz(gateway)).status === 503, {
          timeoutMs: 15_000,
          message: "/readyz 503",
        });
        expect((await readyz(gateway)).body).toEqual({
          status: "not_ready",
          reasons: ["backplane_disconnected"],
        });
        expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
      }
    });

    it("keeps serving local traffic while Redis is away", async () => {
      for (let n = 0; n < 20; n++) expect(await publish(`during-${n}`)).toEqual({ ok: true });
      await waitFor(() => got.neighbour.length === 21, { message: "local deliveries" });
      expect(got.neighbour.at(-1)).toBe("during-19");
      // Dropped, not queued: counted on the sender's gateway.
      const metrics = await (await fetch(`${a.url}/metrics`)).text();
      const dropped = Number(
        /^switchboard_backplane_dropped_total(?:{[^}]*})? (\d+)/m.exec(metrics)?.[1],
      );
      expect(dropped).toBeGreaterThanOrEqual(20);
    });

    it("is ready again once Redis is back, and delivers across gateways without replaying the lost publishes", async () => {
      await redis.resume();
      for (const gateway of [a, b]) {
        await waitFor(async () => (await readyz(gateway)).status === 200, {
          timeoutMs: 20_000,
          message: "/readyz 200 again",
        });
      }
      // Subscriptions are restored as each connection comes back: publish until one gets through.
      let attempt = 0;
      await waitFor(
        async () => {
          await publish(`after-${attempt++}`);
          return got.remote.some((data) => String(data).startsWith("after-"));
        },
        { timeoutMs: 15_000, intervalMs: 200, message: "cross-gateway delivery after the outage" },
      );
      expect(got.remote.filter((data) => String(data).startsWith("during-"))).toEqual([]);
      expect(got.remote[0]).toBe("before");
    });
  },
);
