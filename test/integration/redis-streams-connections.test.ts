import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GatewayProcess } from "../support/gateway-process.js";
import { errorLines, readyz, startGateways } from "../support/redis-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "../support/redis-server.js";
import { waitFor } from "../support/wait.js";

/**
 * BACKPLANE=redis-streams: @socket.io/redis-streams-adapter duplicates the gateway's Redis client
 * for its blocking XREAD and its pub/sub subscriber. Without them a gateway receives nothing
 * from the others, so /readyz counts them like the publishing connection, and their errors are
 * logged once per failure (not once per reconnect attempt) with the connection's role.
 *
 * To fail one of them alone, the test kills it on the private redis-server while new connections
 * are refused (`maxclients` 1: the ones open stay), so that it stays down until allowed back.
 */
describe("BACKPLANE=redis-streams watches the connections its adapter duplicates", () => {
  let redis: PrivateRedis;
  let admin: Redis;
  let gateway: GatewayProcess;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    admin = new Redis(redis.url);
    admin.on("error", () => {}); // reconnects by itself after the restart test
    [gateway] = (await startGateways(1, () => ({
      BACKPLANE: "redis-streams",
      REDIS_URL: redis.url,
      LOG_LEVEL: "info",
    }))) as [GatewayProcess];
  });
  afterAll(async () => {
    await gateway?.stop();
    admin?.disconnect();
    await redis?.stop();
  });

  /** Lines the gateway logged about one connection, by message. */
  const logged = (connection: string, msg: RegExp) =>
    gateway
      .output()
      .split("\n")
      .filter((line) => line.includes(`"connection":"${connection}"`) && msg.test(line)).length;

  /** The id of the gateway's connection on the private server that `matches` its CLIENT LIST line. */
  const clientId = async (matches: (line: string) => boolean) => {
    const list = (await admin.client("LIST")) as string;
    const line = list.split("\n").find((l) => matches(l) && !l.includes(" name=admin "));
    return /^id=(\d+)/.exec(line ?? "")?.[1];
  };

  /** Kills one connection of the gateway and keeps it from reconnecting until `allowBack`. */
  const cutOff = async (role: string, matches: (line: string) => boolean) => {
    const id = await waitFor(() => clientId(matches), { message: `the ${role} connection` });
    await admin.config("SET", "maxclients", "1");
    await admin.client("KILL", "ID", id);
  };
  const allowBack = () => admin.config("SET", "maxclients", "10000");

  it.each([
    // Blocked in XREAD most of the time: its last command is xread.
    ["stream-reader", (line: string) => / cmd=xread /.test(line)],
    ["stream-subscriber", (line: string) => / flags=P /.test(line)],
  ])(
    "the gateway is not ready while its %s connection is down, and says why once",
    async (role, matches) => {
      await admin.client("SETNAME", "admin");
      expect((await readyz(gateway)).status).toBe(200);
      const warnedBefore = logged(role, /Redis connection error/);
      const backBefore = logged(role, /Redis connection ready again/);
      await cutOff(role, matches);
      try {
        await waitFor(async () => (await readyz(gateway)).status === 503, {
          timeoutMs: 10_000,
          message: `/readyz 503 with the ${role} connection down`,
        });
        expect((await readyz(gateway)).body).toEqual({
          status: "not_ready",
          reasons: ["backplane_disconnected"],
        });
        await waitFor(() => logged(role, /Redis connection error/) > warnedBefore, {
          message: `a warning naming the ${role} connection`,
        });
        // The connection keeps failing (a reconnect every 100 ms to 2 s): still one warning.
        const attempts = async () => {
          const info = (await admin.info("stats")) as string;
          return Number(/rejected_connections:(\d+)/.exec(info)?.[1]);
        };
        const rejected = await attempts();
        await waitFor(async () => (await attempts()) >= rejected + 2, {
          message: "two more refused reconnects",
        });
        expect(logged(role, /Redis connection error/)).toBe(warnedBefore + 1);
      } finally {
        await allowBack();
      }
      await waitFor(async () => (await readyz(gateway)).status === 200, {
        timeoutMs: 15_000,
        message: `/readyz 200 with the ${role} connection back`,
      });
      await waitFor(() => logged(role, /Redis connection ready again/) > backBefore, {
        message: `the ${role} connection logged back`,
      });
      expect(errorLines(gateway)).toEqual([]);
    },
  );

  it("a Redis restart takes every connection down and back, and each says so", async () => {
    const roles = ["publisher", "stream-reader", "stream-subscriber"];
    const warned = roles.map((role) => logged(role, /Redis connection error/));
    const back = roles.map((role) => logged(role, /Redis connection ready again/));
    await redis.pause();
    await waitFor(async () => (await readyz(gateway)).status === 503, {
      timeoutMs: 10_000,
      message: "/readyz 503 while Redis is stopped",
    });
    for (const [i, role] of roles.entries()) {
      await waitFor(() => logged(role, /Redis connection error/) > (warned[i] ?? 0), {
        message: `a warning naming the ${role} connection`,
      });
    }
    await redis.resume();
    await waitFor(async () => (await readyz(gateway)).status === 200, {
      timeoutMs: 20_000,
      message: "/readyz 200 once Redis is back",
    });
    // Ready means the adapter's connections are back too: its reader is blocked in XREAD again.
    await waitFor(() => clientId((line) => / cmd=xread /.test(line)), {
      message: "the XREAD connection back",
    });
    for (const [i, role] of roles.entries()) {
      await waitFor(() => logged(role, /Redis connection ready again/) > (back[i] ?? 0), {
        message: `the ${role} connection logged back`,
      });
    }
    expect(errorLines(gateway)).toEqual([]);
  });
});
