import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { SECOND_NAMESPACE } from "../support/harness/protocol.js";
import type { EmitterJob } from "../support/redis-emitter-process.js";
import { drained, startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { type PrivateRedis, startPrivateRedis } from "../support/redis-server.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const EMITTER = fileURLToPath(new URL("../support/redis-emitter-process.ts", import.meta.url));

/** Runs the emits in a separate Node process with @socket.io/redis-emitter; resolves when it exited. */
async function emitFromAnotherProcess(job: EmitterJob): Promise<void> {
  await run(process.execPath, ["--import", "tsx", EMITTER, JSON.stringify(job)], {
    timeout: 20_000,
  });
}

/**
 * BACKPLANE=redis keeps the official key prefix, so a plain `@socket.io/redis-emitter` in any
 * Node process reaches the clients of every gateway. The gateways run in harness mode only for
 * its second namespace; a private redis-server keeps other tests' broadcasts away.
 */
describe("@socket.io/redis-emitter against BACKPLANE=redis gateways", () => {
  let redis: PrivateRedis;
  let gateways: GatewayProcess[];

  beforeAll(async () => {
    redis = await startPrivateRedis();
    gateways = await startGateways(
      2,
      () => ({ BACKPLANE: "redis", REDIS_URL: redis.url }),
      "harness",
    );
  });
  afterAll(async () => {
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
    await redis?.stop();
  });
  afterEach(() => closeAllClients());

  /** One client per gateway, joined to `rooms`. */
  const clientsOnEachGateway = (rooms: string[]) =>
    Promise.all(
      gateways.map(async (gateway) => {
        const socket = await connectClient(gateway.url);
        for (const room of rooms) expect(await request(socket, "join", room)).toEqual({ ok: true });
        return socket;
      }),
    );

  it("to(room).emit reaches the room's members on every gateway, and no one else", async () => {
    const room = uniqueRoom("news");
    const members = await clientsOnEachGateway([room]);
    const outsiders = await clientsOnEachGateway([]);
    expect(
      new Set(await Promise.all(members.map(async (m) => (await whoami(m)).gateway))).size,
    ).toBe(2);
    const got = {
      members: members.map((socket) => collect(socket, "headline")),
      outsiders: outsiders.map((socket) => collect(socket, "headline")),
    };

    await emitFromAnotherProcess({
      url: redis.url,
      emits: [{ to: [room], event: "headline", data: { text: "from outside" } }],
    });
    await waitFor(() => got.members.every((messages) => messages.length === 1), {
      message: "the members on both gateways",
    });
    await Promise.all(outsiders.map(drained));
    expect(got).toEqual({
      members: [[{ text: "from outside" }], [{ text: "from outside" }]],
      outsiders: [[], []],
    });
  });

  it("except(room) leaves out the clients in that room, on every gateway", async () => {
    const room = uniqueRoom("team");
    const muted = uniqueRoom("muted");
    const listeners = await clientsOnEachGateway([room]);
    const mutedMembers = await clientsOnEachGateway([room, muted]);
    const got = {
      listeners: listeners.map((socket) => collect(socket, "notice")),
      muted: mutedMembers.map((socket) => collect(socket, "notice")),
    };

    await emitFromAnotherProcess({
      url: redis.url,
      emits: [{ to: [room], except: [muted], event: "notice", data: 7 }],
    });
    await waitFor(() => got.listeners.every((messages) => messages.length === 1), {
      message: "the listeners on both gateways",
    });
    await Promise.all(mutedMembers.map(drained));
    expect(got).toEqual({ listeners: [[7], [7]], muted: [[], []] });
  });

  it("of(namespace).emit reaches that namespace on every gateway, not the main one", async () => {
    const inSecond: Socket[] = await Promise.all(
      gateways.map((gateway) => connectClient(`${gateway.url}${SECOND_NAMESPACE}`)),
    );
    const inMain = await clientsOnEachGateway([]);
    const got = {
      second: inSecond.map((socket) => collect(socket, "ping:ns")),
      main: inMain.map((socket) => collect(socket, "ping:ns")),
    };

    await emitFromAnotherProcess({
      url: redis.url,
      emits: [{ nsp: SECOND_NAMESPACE, event: "ping:ns", data: "second" }],
    });
    await waitFor(() => got.second.every((messages) => messages.length === 1), {
      message: "the second namespace on both gateways",
    });
    await Promise.all(inMain.map(drained));
    expect(got).toEqual({ second: [["second"], ["second"]], main: [[], []] });
  });
});
