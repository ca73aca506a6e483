import { randomUUID } from "node:crypto";
import amqp, { type ChannelModel } from "amqplib";
import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { AmqpEmitter } from "../../adapters/amqp/index.js";
import { amqpUrl } from "../support/brokers.js";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import {
  type ReceivedServerEvent,
  SECOND_NAMESPACE,
  SERVER_EVENT_RECORD,
} from "../support/harness/protocol.js";
import { startGateways, uniqueRoom } from "../support/redis-helpers.js";
import { waitFor } from "../support/wait.js";

/**
 * AmqpEmitter in a Node process that is not a gateway (this one) against 3 real BACKPLANE=amqp
 * gateway processes (harness mode only for its second namespace and server-side events).
 * Absence is proven with a marker emitted to everyone afterwards: one emitter publishes on one
 * channel, so each gateway's queue holds the marker behind the message under test.
 */
describe("AmqpEmitter against 3 BACKPLANE=amqp gateway processes", () => {
  const exchange = `test.emitter.${randomUUID().slice(0, 8)}`;
  let gateways: GatewayProcess[];
  let connection: ChannelModel;
  let emitter: AmqpEmitter;

  beforeAll(async () => {
    const url = await amqpUrl();
    gateways = await startGateways(
      3,
      // INGEST off: the default publish queue is shared with every other test.
      () => ({ BACKPLANE: "amqp", AMQP_URL: url, AMQP_EXCHANGE: exchange, INGEST: "off" }),
      "harness",
    );
    connection = await amqp.connect(url);
    emitter = new AmqpEmitter(connection, { exchange });
  });
  afterAll(async () => {
    await emitter?.close();
    await connection?.close();
    await Promise.all((gateways ?? []).map((gateway) => gateway.stop()));
    const cleanup = await amqp.connect(await amqpUrl());
    const channel = await cleanup.createChannel();
    await channel.deleteExchange(exchange);
    await cleanup.close();
  });
  afterEach(() => closeAllClients());

  /** One client per gateway, joined to `rooms`, each collecting `events`. */
  async function clientsOnEachGateway(rooms: string[], nsp = "") {
    return Promise.all(
      gateways.map(async (gateway) => {
        const socket = await connectClient(gateway.url + nsp);
        if (nsp === "") {
          for (const room of rooms)
            expect(await request(socket, "join", room)).toEqual({ ok: true });
        }
        return socket;
      }),
    );
  }

  async function afterMarker(sockets: Socket[], nsp = "/"): Promise<void> {
    const marks = sockets.map((socket) => collect(socket, "marker"));
    emitter.of(nsp).emit("marker");
    await waitFor(() => marks.every((m) => m.length === 1), { message: "the marker everywhere" });
  }

  it("to(room) reaches the members on all 3 gateways, except(room) leaves its members out", async () => {
    const room = uniqueRoom("news");
    const muted = uniqueRoom("muted");
    const members = await clientsOnEachGateway([room]);
    const mutedMembers = await clientsOnEachGateway([room, muted]);
    const outsiders = await clientsOnEachGateway([]);
    expect(
      new Set(await Promise.all(members.map(async (m) => (await whoami(m)).gateway))).size,
    ).toBe(3);
    const got = {
      members: members.map((s) => collect(s, "headline")),
      muted: mutedMembers.map((s) => collect(s, "headline")),
      outsiders: outsiders.map((s) => collect(s, "headline")),
    };
    emitter
      .to(room)
      .except(muted)
      .emit("headline", { text: "from outside" }, Buffer.from([1, 2, 3]));
    await afterMarker([...members, ...mutedMembers, ...outsiders]);
    const one = [[{ text: "from outside" }]];
    expect(got.members).toEqual([one[0], one[0], one[0]]);
    expect(got).toMatchObject({ muted: [[], [], []], outsiders: [[], [], []] });
  });

  it("of(namespace) reaches that namespace on every gateway, not the main one", async () => {
    const second = await clientsOnEachGateway([], SECOND_NAMESPACE);
    const main = await clientsOnEachGateway([]);
    const got = {
      second: second.map((s) => collect(s, "ns")),
      main: main.map((s) => collect(s, "ns")),
    };
    emitter.of(SECOND_NAMESPACE).emit("ns", "second");
    await afterMarker(second, SECOND_NAMESPACE);
    await afterMarker(main);
    expect(got).toEqual({ second: [["second"], ["second"], ["second"]], main: [[], [], []] });
  });

  it("socketsJoin then emit reaches the new members; disconnectSockets closes them on every gateway", async () => {
    const from = uniqueRoom("from");
    const to = uniqueRoom("to");
    const clients = await clientsOnEachGateway([from]);
    const got = clients.map((s) => collect(s, "welcome"));
    emitter.in(from).socketsJoin(to);
    emitter.to(to).emit("welcome", 1);
    await waitFor(() => got.every((g) => g.length === 1), { message: "welcome on every gateway" });
    for (const client of clients)
      expect((await whoami(client)).rooms.sort()).toEqual([from, to].sort());

    const gone = clients.map(
      (s) => new Promise<string>((resolve) => s.once("disconnect", resolve)),
    );
    emitter.in(to).disconnectSockets(true);
    expect(await Promise.all(gone)).toEqual([
      "io server disconnect",
      "io server disconnect",
      "io server disconnect",
    ]);
  });

  it("serverSideEmit reaches every gateway process", async () => {
    const tag = randomUUID();
    emitter.serverSideEmit(SERVER_EVENT_RECORD, tag);
    for (const gateway of gateways) {
      await waitFor(
        async () =>
          (await gateway.control<ReceivedServerEvent[]>("serverSideReceived")).some((e) =>
            e.args.includes(tag),
          ),
        { message: `server-side event on ${gateway.url}` },
      );
    }
  });
});
