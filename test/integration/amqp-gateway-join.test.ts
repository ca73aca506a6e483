import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl } from "../support/brokers.js";
import { closeAllClients, connectClient, request } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { nextEvent } from "../support/wait.js";

const ROUNDS = 25;

/** The gateway's current number of bound routing keys, from /metrics. */
async function bindings(gateway: GatewayProcess): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const match = /^switchboard_backplane_bindings(?:\{[^}]*\})? (\d+)$/m.exec(text);
  if (!match) throw new Error("no switchboard_backplane_bindings in /metrics");
  return Number(match[1]);
}

/**
 * The gateway's guarantee with room routing (its default on BACKPLANE=amqp):
 * a client whose `join` was acknowledged receives every publish to that room
 * made afterwards on any gateway — the ack is sent only once the room's key is
 * bound to the gateway's queue.
 */
describe("BACKPLANE=amqp gateways with room routing (the gateway default)", () => {
  let gateways: GatewayProcess[];
  beforeAll(async () => {
    const url = await amqpUrl();
    const exchange = `test.join.${randomUUID().slice(0, 8)}`;
    gateways = await startGateways(2, () => ({
      BACKPLANE: "amqp",
      AMQP_URL: url,
      AMQP_EXCHANGE: exchange,
      // Not this test's business, and the default queue is shared with every other test.
      INGEST: "off",
    }));
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((g) => g.stop()));
  });
  afterEach(() => closeAllClients());

  it("a client whose join was acknowledged receives a publish sent right after from another gateway, every time", async () => {
    const [g0, g1] = gateways as [GatewayProcess, GatewayProcess];
    const member: Socket = await connectClient(g0.url);
    const sender: Socket = await connectClient(g1.url);
    const before = await bindings(g0);
    for (let i = 0; i < ROUNDS; i++) {
      const room = uniqueRoom("join");
      const got = nextEvent<[{ round: number }]>(member, `round-${i}`, 10_000);
      expect(await request(member, "join", room)).toEqual({ ok: true });
      expect(
        await request(sender, "publish", { room, event: `round-${i}`, data: { round: i } }),
      ).toEqual({
        ok: true,
      });
      expect((await got)[0]).toEqual({ round: i });
    }
    // Room routing really is on: the member's gateway bound one key per room it joined.
    expect((await bindings(g0)) - before).toBe(ROUNDS);
  });
});
