import type { Socket } from "socket.io-client";
import { describe, expect } from "vitest";
import { whoami } from "../../support/clients.js";
import type { HarnessNode } from "../../support/harness/deployment.js";
import {
  SERVER_EVENT_ASK,
  SERVER_EVENT_RECORD,
  THROWING_PREFIX,
} from "../../support/harness/protocol.js";
import { nextEvent, waitFor } from "../../support/wait.js";
import { arrivedAt, idOf, join, type SuiteContext, settle, token, uniqueRoom } from "../context.js";

const roomsOf = async (socket: Socket) => new Set((await whoami(socket)).rooms);

/** Requests across processes: fetchSockets, socketsJoin/Leave, disconnectSockets, server-side emits, acks. */
export function requestCases(ctx: SuiteContext): void {
  describe("fetchSockets and remote socket operations", () => {
    ctx.case(
      "fetch-sockets",
      "fetchSockets() returns the sockets of every process with their ids, rooms, data and handshake",
      async () => {
        const room = uniqueRoom("fetch");
        const tag = token();
        const clients = await Promise.all(
          [0, 1, 2].map((i) => ctx.client(i, { query: { tag }, auth: { user: `user-${i}` } })),
        );
        await Promise.all(clients.map((c, i) => join(c, room, `${room}:${i}`)));
        await Promise.all(
          clients.map((c, i) =>
            ctx.node(i).control("setData", { socketId: idOf(c), data: { n: i, tag } }),
          ),
        );
        const sockets = await ctx.node(0).control("fetchSockets", { to: [room] });
        expect(sockets.map((s) => s.id).sort()).toEqual(clients.map(idOf).sort());
        for (const [i, client] of clients.entries()) {
          const socket = sockets.find((s) => s.id === idOf(client));
          expect(new Set(socket?.rooms)).toEqual(new Set([idOf(client), room, `${room}:${i}`]));
          expect(socket?.data).toEqual({ n: i, tag });
          expect(socket?.handshake.query).toMatchObject({ tag });
          expect(socket?.handshake.auth).toEqual({ user: `user-${i}` });
          expect(socket?.handshake.address).toMatch(/127\.0\.0\.1/);
        }
        // Rooms and except filter remotely too.
        const filtered = await ctx
          .node(2)
          .control("fetchSockets", { to: [room], except: [`${room}:1`] });
        expect(filtered.map((s) => s.id).sort()).toEqual(
          [idOf(clients[0] as Socket), idOf(clients[2] as Socket)].sort(),
        );
      },
    );

    ctx.case(
      "sockets-join",
      "socketsJoin() makes the matching sockets of other processes join, and only them",
      async () => {
        const [room, added] = [uniqueRoom("src"), uniqueRoom("added")];
        const [member1, member2, outsider] = await ctx.clients(1, 2, 2);
        await Promise.all([join(member1, room), join(member2, room)]);
        await ctx.node(0).control("socketsJoin", { to: [room], rooms: [added] });
        await waitFor(
          async () => (await roomsOf(member1)).has(added) && (await roomsOf(member2)).has(added),
          { message: "remote members to join the room" },
        );
        // The outsider's process has applied the same request already.
        expect((await roomsOf(outsider)).has(added)).toBe(false);
        const got = [member1, member2].map((s) => ctx.received(s, "in-added"));
        await ctx.node(0).control("emit", { to: [added], event: "in-added", args: [] });
        await arrivedAt(got);
      },
    );

    ctx.case(
      "sockets-leave",
      "socketsLeave() makes the matching sockets of other processes leave, and only them",
      async () => {
        const [room, left] = [uniqueRoom("src"), uniqueRoom("left")];
        const [member1, member2, stays] = await ctx.clients(1, 2, 2);
        await Promise.all([
          join(member1, room, left),
          join(member2, room, left),
          join(stays, left),
        ]);
        await ctx.node(0).control("socketsLeave", { to: [room], rooms: [left] });
        await waitFor(
          async () => !(await roomsOf(member1)).has(left) && !(await roomsOf(member2)).has(left),
          { message: "remote members to leave the room" },
        );
        expect((await roomsOf(stays)).has(left)).toBe(true);
        expect((await roomsOf(member1)).has(room)).toBe(true);
      },
    );

    ctx.case(
      "disconnect-sockets",
      "disconnectSockets(true) disconnects the matching sockets of every process, and only them",
      async () => {
        const room = uniqueRoom("kick");
        const [local, remote1, remote2, spared] = await ctx.clients(0, 1, 2, 2);
        const targets = [local, remote1, remote2];
        await Promise.all(targets.map((s) => join(s, room)));
        const reasons = targets.map((s) => nextEvent<[string]>(s, "disconnect"));
        await ctx.node(0).control("disconnectSockets", { to: [room], close: true });
        for (const [reason] of await Promise.all(reasons))
          expect(reason).toBe("io server disconnect");
        await settle(ctx.node(0), [spared]);
        expect(spared.connected).toBe(true);
        expect((await whoami(spared)).id).toBe(idOf(spared));
      },
    );
  });

  describe("server-side emits and acknowledgements", () => {
    const recorded = async (node: HarnessNode, t: string) =>
      (await node.control("serverSideReceived")).filter((e) => e.args[0] === t);

    ctx.case(
      "server-side-emit",
      "serverSideEmit reaches every other process once, and not the sender",
      async () => {
        const t = token();
        const [sender, ...others] = ctx.nodes as HarnessNode[];
        await (sender as HarnessNode).control("serverSideEmit", { args: [t, { x: 1 }] });
        await waitFor(
          async () => {
            const seen = await Promise.all(others.map((n) => recorded(n, t)));
            return seen.every((list) => list.length > 0);
          },
          { message: "the other processes to receive the server-side event" },
        );
        for (const node of others) {
          expect(await recorded(node, t)).toEqual([
            { event: SERVER_EVENT_RECORD, args: [t, { x: 1 }] },
          ]);
        }
        // A marker from another process reaching the sender proves the first did not loop back.
        const marker = token();
        await (others[0] as HarnessNode).control("serverSideEmit", { args: [marker] });
        await waitFor(async () => (await recorded(sender as HarnessNode, marker)).length > 0, {
          message: "the marker",
        });
        expect(await recorded(sender as HarnessNode, t)).toEqual([]);
      },
    );

    ctx.case(
      "server-side-emit-with-ack",
      "serverSideEmitWithAck gets exactly one answer from each other process",
      async () => {
        const t = token();
        const [sender, ...others] = ctx.nodes as HarnessNode[];
        const replies = await (sender as HarnessNode).control("serverSideEmitWithAck", {
          args: [t],
        });
        expect(replies.map((r) => r.gateway).sort()).toEqual(others.map((n) => n.gatewayId).sort());
        for (const reply of replies) expect(reply.args).toEqual([t]);
      },
    );

    ctx.case(
      "server-side-emit-listener-throws",
      "a serverSideEmit listener that throws is logged with its event; the other listeners, the process and later requests carry on",
      async () => {
        const [sender, ...others] = ctx.nodes as HarnessNode[];
        const before = await Promise.all(ctx.nodes.map((n) => n.control("info")));
        // The harness's first listener throws on these; its recording listener comes after.
        const t = `${THROWING_PREFIX}${token()}`;
        await (sender as HarnessNode).control("serverSideEmit", { args: [t] });
        await waitFor(
          async () => {
            const seen = await Promise.all(others.map((n) => recorded(n, t)));
            return seen.every((list) => list.length === 1);
          },
          { message: "the listeners after the one that threw to run on every other process" },
        );
        // A request whose first listener throws is answered by the next one, on every process.
        const asked = `${THROWING_PREFIX}${token()}`;
        const replies = await (sender as HarnessNode).control("serverSideEmitWithAck", {
          args: [asked],
        });
        expect(replies.map((r) => r.gateway).sort()).toEqual(others.map((n) => n.gatewayId).sort());
        // Later requests, and the same processes: none died or was replaced.
        const later = await (sender as HarnessNode).control("serverSideEmitWithAck", {
          args: [token()],
        });
        expect(later).toHaveLength(others.length);
        expect(await Promise.all(ctx.nodes.map((n) => n.control("info")))).toEqual(before);
        // Each other process logged the throw once per event, naming the event.
        await waitFor(
          () => {
            const lines = ctx
              .output(1000)
              .split("\n")
              .filter((line) => line.includes("serverSideEmit listener threw"));
            const count = (event: string) =>
              lines.filter((line) => line.includes(`"event":"${event}"`)).length;
            return (
              count(SERVER_EVENT_RECORD) >= others.length &&
              count(SERVER_EVENT_ASK) >= others.length
            );
          },
          { message: "the throws logged with their event" },
        );
      },
    );

    ctx.case(
      "broadcast-with-ack",
      "io.to(room).timeout(t).emitWithAck collects one ack per client on every process",
      async () => {
        const room = uniqueRoom("ack");
        const clients = await ctx.clients(0, 1, 2);
        await Promise.all(clients.map((c) => join(c, room)));
        for (const client of clients) {
          client.on("question", (q: string, ack: (a: unknown) => void) =>
            ack({ from: client.id, q }),
          );
        }
        const answers = await ctx.node(1).control("emitWithAck", {
          to: [room],
          timeoutMs: 5000,
          event: "question",
          args: ["ready?"],
        });
        const byClient = (a: unknown, b: unknown) =>
          String((a as { from: string }).from).localeCompare(String((b as { from: string }).from));
        expect(answers.sort(byClient)).toEqual(
          clients.map((c) => ({ from: idOf(c), q: "ready?" })).sort(byClient),
        );
      },
    );
  });
}
