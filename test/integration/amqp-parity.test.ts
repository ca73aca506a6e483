/**
 * Parity with @socket.io/redis-adapter: the same cases, written from the
 * official adapter's documented behaviour, run against the Redis adapter on
 * Redis (the reference column) and the AMQP adapter with room routing off
 * (its default) and on. A column may differ from the reference only where it
 * names the difference as a documented option (amqp-parity-columns.ts); the
 * case then checks the documented guarantee instead.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { waitFor } from "../support/wait.js";
import { type CaseId, type Column, columns, type ParityCluster } from "./amqp-parity-columns.js";

type Recorded = unknown[][];

/** Every event `client` receives, in order, as [event, ...args]. */
function record(client: ClientSocket): Recorded {
  const events: Recorded = [];
  client.onAny((...args: unknown[]) => events.push(args));
  return events;
}

const count = (events: Recorded, event: string) => events.filter((e) => e[0] === event).length;
const unique = (prefix: string) => `${prefix}:${randomBytes(4).toString("hex")}`;

/**
 * Server `from` broadcasts a marker to everyone; once each recorder has it,
 * everything `from` broadcast before has arrived too (one publisher's messages
 * reach a node in order, and a node writes a socket's packets in order).
 */
async function fence(cluster: ParityCluster, from: number, recorders: Recorded[]): Promise<void> {
  const token = unique("fence");
  cluster.servers[from]?.emit("fence", token);
  await waitFor(() => recorders.every((events) => events.some((e) => e[1] === token)), {
    timeoutMs: 10_000,
    message: "the fence reached every client",
  });
}

async function expectRejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  const outcome = await promise.then(
    () => undefined,
    (err: unknown) => err as Error & { code?: string },
  );
  if (!outcome) throw new Error("expected a rejection");
  return outcome;
}

const REFERENCE = columns[0] as Column;
const ACK_THROW_CHILD = fileURLToPath(new URL("./amqp-parity-ack-throw.ts", import.meta.url));

describe.each(columns)("parity: $name", (column) => {
  const documented = (id: CaseId) => column.documented[id];

  describe("on a cluster of 3 servers", () => {
    let cluster: ParityCluster;
    beforeAll(async () => {
      cluster = await column.start({ nodes: 3, requestsTimeoutMs: 5_000 });
      cluster.servers.forEach((io, i) => {
        io.on("ping", (...args: unknown[]) => {
          const ack = args.at(-1);
          if (typeof ack === "function") ack(`pong-${i}`);
        });
      });
    });
    afterAll(() => cluster?.close());
    afterEach(() => {
      // Every case leaves the base's request map empty: nothing left waiting.
      for (const i of [0, 1, 2]) expect(cluster.adapter(i).requests.size).toBe(0);
      cluster.disconnectClients();
    });

    it("io.emit reaches every client on every server exactly once", async () => {
      const clients = await Promise.all([0, 1, 2].map((i) => cluster.client(i)));
      const got = clients.map(record);
      cluster.servers[1]?.emit("hello", "all");
      await fence(cluster, 1, got);
      for (const events of got) expect(count(events, "hello")).toBe(1);
    });

    it("a broadcast to a room reaches its members on every server and no one else", async () => {
      const room = unique("room");
      const [m0, other0, m1, other2] = await Promise.all(
        [0, 0, 1, 2].map((i) => cluster.client(i)),
      );
      await cluster.serverSocket(0, m0 as ClientSocket).join(room);
      await cluster.serverSocket(1, m1 as ClientSocket).join(room);
      const got = [m0, other0, m1, other2].map((c) => record(c as ClientSocket));
      cluster.servers[2]?.to(room).emit("news", 1);
      await fence(cluster, 2, got);
      expect(got.map((events) => count(events, "news"))).toEqual([1, 0, 1, 0]);
    });

    it("except() skips the excepted room's members, several rooms reach a member once", async () => {
      const [a, b, vip] = [unique("a"), unique("b"), unique("vip")];
      const [inBoth, inA, inAVip, none] = await Promise.all(
        [1, 2, 2, 0].map((i) => cluster.client(i)),
      );
      await cluster.serverSocket(1, inBoth as ClientSocket).join([a, b]);
      await cluster.serverSocket(2, inA as ClientSocket).join(a);
      await cluster.serverSocket(2, inAVip as ClientSocket).join([a, vip]);
      const got = [inBoth, inA, inAVip, none].map((c) => record(c as ClientSocket));
      cluster.servers[0]?.to([a, b]).except(vip).emit("news", 2);
      await fence(cluster, 0, got);
      expect(got.map((events) => count(events, "news"))).toEqual([1, 1, 0, 0]);
    });

    it("numeric rooms: join(n), to(n) and except(n) work, and the string of n is another room", async () => {
      const n = 100_000 + Math.floor(Math.random() * 100_000);
      const [member0, member2, stringMember, other] = await Promise.all(
        [0, 2, 1, 1].map((i) => cluster.client(i)),
      );
      // Socket.IO's typings say string; at run time any Room works with the official adapters.
      const numeric = n as unknown as string;
      await cluster.serverSocket(0, member0 as ClientSocket).join(numeric);
      await cluster.serverSocket(2, member2 as ClientSocket).join(numeric);
      await cluster.serverSocket(1, stringMember as ClientSocket).join(String(n));
      const got = [member0, member2, stringMember, other].map((c) => record(c as ClientSocket));
      cluster.servers[1]?.to(numeric).emit("to-number", 1);
      cluster.servers[1]?.except(numeric).emit("except-number", 1);
      await fence(cluster, 1, got);
      expect(got.map((events) => count(events, "to-number"))).toEqual([1, 1, 0, 0]);
      expect(got.map((events) => count(events, "except-number"))).toEqual([0, 0, 1, 1]);
      const rooms = await cluster.adapter(1).allRooms();
      expect(rooms.has(n)).toBe(true);
    });

    it("a socket joined without await receives an emit to that room from another server", async () => {
      const room = unique("late");
      const [member, witness] = await Promise.all([cluster.client(1), cluster.client(1)]);
      const got = [record(member), record(witness)];
      const joined = cluster.serverSocket(1, member).join(room);
      const guarantee = documented("unawaited join then remote emit");
      if (guarantee) {
        // The documented option: reached once the promise returned by join() resolved.
        await joined;
      }
      cluster.servers[0]?.to(room).emit("late", 1);
      await fence(cluster, 0, got);
      expect(got.map((events) => count(events, "late"))).toEqual([1, 0]);
    });

    it("emitWithAck across servers collects one answer per client", async () => {
      const clients = await Promise.all([0, 1, 2].map((i) => cluster.client(i)));
      for (const [i, c] of clients.entries()) {
        c.on("question", (ack: (a: string) => void) => ack(`c${i}`));
      }
      const answers = await cluster.servers[1]?.timeout(5_000).emitWithAck("question");
      expect([...(answers ?? [])].sort()).toEqual(["c0", "c1", "c2"]);
    });

    it("socketsJoin and socketsLeave from another server move a remote socket in and out of a room", async () => {
      const room = unique("moved");
      const target = await cluster.client(2);
      const got = [record(target)];
      const socket = cluster.serverSocket(2, target);
      cluster.servers[0]?.in(target.id ?? "").socketsJoin(room);
      await waitFor(() => socket.rooms.has(room), { message: "joined by socketsJoin" });
      cluster.servers[1]?.to(room).emit("in-room", 1);
      await fence(cluster, 1, got);
      cluster.servers[0]?.in(room).socketsLeave(room);
      await waitFor(() => !socket.rooms.has(room), { message: "left by socketsLeave" });
      cluster.servers[1]?.to(room).emit("in-room", 2);
      await fence(cluster, 1, got);
      expect(got[0]?.filter((e) => e[0] === "in-room")).toEqual([["in-room", 1]]);
    });

    it("disconnectSockets from another server disconnects the room's members on every server only", async () => {
      const room = unique("bye");
      const [m1, m2, other] = await Promise.all([1, 2, 2].map((i) => cluster.client(i)));
      await cluster.serverSocket(1, m1 as ClientSocket).join(room);
      await cluster.serverSocket(2, m2 as ClientSocket).join(room);
      const reasons: string[] = [];
      for (const c of [m1, m2]) c?.on("disconnect", (reason) => reasons.push(reason));
      const otherGot = [record(other as ClientSocket)];
      cluster.servers[0]?.in(room).disconnectSockets(true);
      await waitFor(() => reasons.length === 2, { message: "both members disconnected" });
      expect(reasons).toEqual(["io server disconnect", "io server disconnect"]);
      await fence(cluster, 2, otherGot);
      expect(other?.connected).toBe(true);
    });

    it("fetchSockets returns the matching sockets of every server with id, rooms and data", async () => {
      const room = unique("fetch");
      const clients = await Promise.all([0, 1, 2, 2].map((i) => cluster.client(i)));
      const servers = [0, 1, 2];
      for (const [i, c] of clients.slice(0, 3).entries()) {
        const socket = cluster.serverSocket(servers[i] as number, c);
        socket.data = { n: i };
        await socket.join(room);
      }
      const found = (await cluster.servers[0]?.in(room).fetchSockets()) ?? [];
      const byId = new Map(found.map((s) => [s.id, s]));
      expect([...byId.keys()].sort()).toEqual(
        clients
          .slice(0, 3)
          .map((c) => c.id)
          .sort(),
      );
      clients.slice(0, 3).forEach((c, i) => {
        const remote = byId.get(c.id ?? "");
        expect(remote?.data).toEqual({ n: i });
        expect([...(remote?.rooms ?? [])].sort()).toEqual([c.id, room].sort());
      });
    });

    it("serverSideEmit reaches every other server once, not the sender", async () => {
      const event = unique("sse");
      const seen: number[] = [];
      const listeners = cluster.servers.map((io, i) => {
        const listener = (value: string) => seen.push(i * 100 + Number(value));
        io.on(event, listener);
        return () => io.off(event, listener);
      });
      try {
        cluster.servers[0]?.serverSideEmit(event, "7");
        await waitFor(() => seen.length >= 2, { message: "two servers got it" });
        // Same servers, answered through the request path: the first emit had arrived by then.
        await cluster.servers[0]?.serverSideEmitWithAck("ping");
        expect(seen.sort()).toEqual([107, 207]);
      } finally {
        for (const off of listeners) off();
      }
    });

    it("serverSideEmitWithAck resolves with one answer per other server", async () => {
      const answers = await cluster.servers[1]?.serverSideEmitWithAck("ping");
      expect([...(answers ?? [])].sort()).toEqual(["pong-0", "pong-2"]);
    });

    it("serverSideEmit with an ack callback gets (null, answers)", async () => {
      const result = await new Promise<[unknown, unknown[]]>((resolve) =>
        cluster.servers[2]?.serverSideEmit("ping", (err: unknown, answers: unknown[]) =>
          resolve([err, answers]),
        ),
      );
      expect(result[0]).toBeNull();
      expect([...result[1]].sort()).toEqual(["pong-0", "pong-1"]);
    });

    it("allRooms lists every room of every server, socket ids included", async () => {
      const [r0, r2] = [unique("all0"), unique("all2")];
      const [c0, c2] = await Promise.all([cluster.client(0), cluster.client(2)]);
      await cluster.serverSocket(0, c0).join(r0);
      await cluster.serverSocket(2, c2).join(r2);
      const rooms = await cluster.adapter(1).allRooms();
      for (const room of [r0, r2, c0.id, c2.id]) expect(rooms.has(room)).toBe(true);
    });
  });

  describe("when a member never answers", () => {
    let cluster: ParityCluster;
    beforeAll(async () => {
      cluster = await column.start({ nodes: 3, requestsTimeoutMs: 700 });
      cluster.servers.forEach((io, i) => {
        io.on("ping", (ack: (a: string) => void) => ack(`pong-${i}`));
      });
      await cluster.addSilentMember();
    });
    afterAll(() => cluster?.close());

    const code = (err: { code?: string }) =>
      // Same message as the reference; the AMQP adapter adds its stable code.
      column === REFERENCE ? undefined : err.code;

    it("serverSideEmitWithAck rejects with the reference's message, the answers that arrived attached", async () => {
      const pending = expectRejection(
        cluster.servers[0]?.serverSideEmitWithAck("ping") ?? Promise.resolve(),
      );
      // While it waits, the request is in the adapter's `requests` map, where clean-up is checked.
      await waitFor(() => cluster.adapter(0).requests.size === 1, { message: "request tracked" });
      const err = (await pending) as Error & { code?: string; responses?: unknown[] };
      expect(err.message).toBe("timeout reached: only 2 responses received out of 3");
      expect([...(err.responses ?? [])].sort()).toEqual(["pong-1", "pong-2"]);
      expect(code(err)).toBe(column === REFERENCE ? undefined : "SWB_ERR_REQUEST_TIMEOUT");
      expect(cluster.adapter(0).requests.size).toBe(0);
    });

    it("fetchSockets rejects with the reference's message", async () => {
      const err = await expectRejection(cluster.servers[1]?.fetchSockets() ?? Promise.resolve());
      expect(err.message).toBe("timeout reached while waiting for fetchSockets response");
      expect(code(err)).toBe(column === REFERENCE ? undefined : "SWB_ERR_REQUEST_TIMEOUT");
      expect(cluster.adapter(1).requests.size).toBe(0);
    });

    it("allRooms rejects with the reference's message", async () => {
      const err = await expectRejection(cluster.adapter(2).allRooms());
      expect(err.message).toBe("timeout reached while waiting for allRooms response");
      expect(code(err)).toBe(column === REFERENCE ? undefined : "SWB_ERR_REQUEST_TIMEOUT");
      expect(cluster.adapter(2).requests.size).toBe(0);
    });
  });

  describe("a user's serverSideEmit ack callback that throws", () => {
    it("is not caught by the adapter: the exception reaches the process as uncaught", async () => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--import", "tsx", ACK_THROW_CHILD, column.name],
        { timeout: 60_000 },
      );
      expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}")).toEqual({
        uncaught: "thrown by the user's ack callback",
      });
    });
  });

  describe("when a server closes", () => {
    it("the others count one server fewer and their requests stop waiting for it", async () => {
      const cluster = await column.start({ nodes: 3, requestsTimeoutMs: 5_000 });
      try {
        cluster.servers.forEach((io, i) => {
          io.on("ping", (ack: (a: string) => void) => ack(`pong-${i}`));
        });
        const client = await cluster.client(2);
        const disconnected = new Promise((resolve) => client.once("disconnect", resolve));
        await cluster.servers[2]?.close();
        await disconnected;
        await waitFor(
          async () =>
            (await cluster.adapter(0).serverCount()) === 2 &&
            (await cluster.adapter(1).serverCount()) === 2,
          { message: "both remaining servers count 2" },
        );
        expect(await cluster.servers[0]?.serverSideEmitWithAck("ping")).toEqual(["pong-1"]);
        expect(cluster.adapter(0).requests.size).toBe(0);
      } finally {
        await cluster.close();
      }
    });
  });
});
