import { describe, expect } from "vitest";
import { SECOND_NAMESPACE } from "../../support/harness/protocol.js";
import { arrivedAt, idOf, join, type SuiteContext, settle, token, uniqueRoom } from "../context.js";

/** Who receives an emit made on one process: everyone, rooms, except, one socket, flags, binary. */
export function broadcastCases(ctx: SuiteContext): void {
  describe("broadcasts", () => {
    ctx.case("emit-all", "io.emit reaches every client on every process, once", async () => {
      const clients = await ctx.clients(0, 1, 2);
      const got = clients.map((c) => ctx.received(c, "news"));
      const t = token();
      await ctx.node(0).control("emit", { event: "news", args: [t, { n: 1 }] });
      await arrivedAt(got);
      await settle(ctx.node(0), clients);
      for (const list of got) expect(list).toEqual([[t, { n: 1 }]]);
    });

    ctx.case(
      "emit-room",
      "io.to(room) reaches the room's members on every process and no one else",
      async () => {
        const room = uniqueRoom("to");
        const [a, b, c, outsider] = await ctx.clients(0, 1, 2, 2);
        await Promise.all([join(a, room), join(b, room), join(c, room)]);
        const got = [a, b, c].map((s) => ctx.received(s, "room-news"));
        const notGot = ctx.received(outsider, "room-news");
        await ctx.node(1).control("emit", { to: [room], event: "room-news", args: ["hello"] });
        await arrivedAt(got);
        await settle(ctx.node(1), [a, b, c, outsider]);
        for (const list of got) expect(list).toEqual([["hello"]]);
        expect(notGot).toEqual([]);
      },
    );

    ctx.case(
      "emit-rooms",
      "io.to([a, b]) reaches members of either room once, even members of both",
      async () => {
        const [roomA, roomB] = [uniqueRoom("a"), uniqueRoom("b")];
        const [inA, inB, inBoth, inNeither] = await ctx.clients(1, 2, 0, 1);
        await Promise.all([join(inA, roomA), join(inB, roomB), join(inBoth, roomA, roomB)]);
        const got = [inA, inB, inBoth].map((s) => ctx.received(s, "multi"));
        const notGot = ctx.received(inNeither, "multi");
        await ctx.node(2).control("emit", { to: [roomA, roomB], event: "multi", args: [1] });
        await arrivedAt(got);
        await settle(ctx.node(2), [inA, inB, inBoth, inNeither]);
        for (const list of got) expect(list).toEqual([[1]]);
        expect(notGot).toEqual([]);
      },
    );

    ctx.case(
      "emit-except",
      "io.except(room) reaches everyone but the room's members, on every process",
      async () => {
        const room = uniqueRoom("except");
        const [excluded1, excluded2, kept1, kept2] = await ctx.clients(1, 2, 0, 2);
        await Promise.all([join(excluded1, room), join(excluded2, room)]);
        const got = [kept1, kept2].map((s) => ctx.received(s, "but-them"));
        const notGot = [excluded1, excluded2].map((s) => ctx.received(s, "but-them"));
        await ctx.node(0).control("emit", { except: [room], event: "but-them", args: ["x"] });
        await arrivedAt(got);
        await settle(ctx.node(0), [excluded1, excluded2, kept1, kept2]);
        for (const list of got) expect(list).toEqual([["x"]]);
        for (const list of notGot) expect(list).toEqual([]);
      },
    );

    ctx.case(
      "emit-socket-id",
      "io.to(socketId) reaches that one socket on another process",
      async () => {
        const [target, other0, other1, sameProcess] = await ctx.clients(2, 0, 1, 2);
        const got = ctx.received(target, "direct");
        const notGot = [other0, other1, sameProcess].map((s) => ctx.received(s, "direct"));
        await ctx.node(0).control("emit", { to: [idOf(target)], event: "direct", args: ["psst"] });
        await arrivedAt([got]);
        await settle(ctx.node(0), [target, other0, other1, sameProcess]);
        expect(got).toEqual([["psst"]]);
        for (const list of notGot) expect(list).toEqual([]);
      },
    );

    ctx.case(
      "emit-local",
      "io.local.to(room) reaches only the room's members on the emitting process",
      async () => {
        const room = uniqueRoom("local");
        const [here, there1, there2] = await ctx.clients(0, 1, 2);
        await Promise.all([join(here, room), join(there1, room), join(there2, room)]);
        const got = ctx.received(here, "local-news");
        const elsewhere = [there1, there2].map((s) => ctx.received(s, "local-news"));
        const sameProcess = ctx.nodes.length === 1;
        await ctx.node(0).control("emit", {
          to: [room],
          local: true,
          event: "local-news",
          args: ["only here"],
        });
        await arrivedAt([got]);
        await settle(ctx.node(0), [here, there1, there2]);
        expect(got).toEqual([["only here"]]);
        // With one process, "local" is everyone.
        for (const list of elsewhere) expect(list).toEqual(sameProcess ? [["only here"]] : []);
      },
    );

    ctx.case(
      "emit-volatile",
      "io.volatile.to(room) reaches connected members on every process",
      async () => {
        const room = uniqueRoom("volatile");
        const clients = await ctx.clients(0, 1, 2);
        await Promise.all(clients.map((c) => join(c, room)));
        const got = clients.map((c) => ctx.received(c, "tick"));
        await ctx.node(1).control("emit", { to: [room], volatile: true, event: "tick", args: [7] });
        await arrivedAt(got);
        await settle(ctx.node(1), clients);
        for (const list of got) expect(list).toEqual([[7]]);
      },
    );

    ctx.case(
      "emit-binary",
      "binary payloads (Buffers, also nested) arrive byte-exact on every process",
      async () => {
        const room = uniqueRoom("binary");
        const clients = await ctx.clients(0, 1, 2);
        await Promise.all(clients.map((c) => join(c, room)));
        const got = clients.map((c) => ctx.received(c, "blob"));
        const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
        const nested = { name: "file.bin", chunk: Buffer.from([0, 255, 0, 128]) };
        await ctx.node(0).control("emit", { to: [room], event: "blob", args: [bytes, nested] });
        await arrivedAt(got);
        for (const list of got) {
          expect(list).toHaveLength(1);
          const [first, second] = list[0] as [Buffer, { name: string; chunk: Buffer }];
          expect(Buffer.isBuffer(first)).toBe(true);
          expect(Buffer.compare(first, bytes)).toBe(0);
          expect(second.name).toBe("file.bin");
          expect(Buffer.compare(Buffer.from(second.chunk), nested.chunk)).toBe(0);
        }
      },
    );

    ctx.case(
      "namespaces",
      "an emit in a second namespace reaches its clients on every process and none of the first's",
      async () => {
        const second = await Promise.all(
          [0, 1, 2].map((i) => ctx.client(i, { nsp: SECOND_NAMESPACE })),
        );
        const first = await ctx.clients(0, 1, 2);
        const got = second.map((s) => ctx.received(s, "ns-news"));
        const notGot = first.map((s) => ctx.received(s, "ns-news"));
        await ctx.node(0).control("emit", {
          nsp: SECOND_NAMESPACE,
          event: "ns-news",
          args: ["second"],
        });
        await arrivedAt(got);
        await settle(ctx.node(0), first);
        for (const list of got) expect(list).toEqual([["second"]]);
        for (const list of notGot) expect(list).toEqual([]);
        // And the other way round: the first namespace's emit stays in the first.
        const back = first.map((s) => ctx.received(s, "first-news"));
        const notBack = second.map((s) => ctx.received(s, "first-news"));
        await ctx.node(1).control("emit", { event: "first-news", args: ["first"] });
        await arrivedAt(back);
        await settle(ctx.node(1), second, SECOND_NAMESPACE);
        for (const list of back) expect(list).toEqual([["first"]]);
        for (const list of notBack) expect(list).toEqual([]);
      },
    );
  });
}
