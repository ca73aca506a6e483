import type { Server, Socket as ServerSocket } from "socket.io";
import type { Socket as ClientSocket } from "socket.io-client";
import { describe, expect, it } from "vitest";
import {
  type AmqpCluster,
  nextEvent,
  recordingLogger,
  startAmqpCluster,
} from "../support/amqp-helpers.js";
import { waitFor } from "../support/wait.js";

function serverSocket(server: Server | undefined, client: ClientSocket, nsp = "/"): ServerSocket {
  const socket = server?.of(nsp).sockets.get(client.id ?? "");
  if (!socket) throw new Error(`no server socket for ${client.id}`);
  return socket;
}

/** One client per node, index-aligned with the servers. */
async function clientsOf(cluster: AmqpCluster, nsp = "/"): Promise<ClientSocket[]> {
  return Promise.all(cluster.servers.map((_, i) => cluster.client(i, nsp)));
}

function expectNone(socket: ClientSocket, event: string): () => void {
  const fail = () => {
    throw new Error(`unexpected "${event}" on ${socket.id}`);
  };
  socket.on(event, fail);
  return () => socket.off(event, fail);
}

describe("amqp adapter: Socket.IO parity across 3 servers", () => {
  it("a broadcast to all from server A reaches clients on every server", async () => {
    const cluster = await startAmqpCluster();
    const clients = await clientsOf(cluster);
    const received = clients.map((c) => nextEvent(c, "hello"));
    cluster.servers[0]?.emit("hello", "world", 1);
    expect(await Promise.all(received)).toEqual(["world", "world", "world"]);
  });

  it("a broadcast to a room reaches only its members, on any server", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1, c2] = await clientsOf(cluster);
    if (!c0 || !c1 || !c2) throw new Error("clients");
    await serverSocket(cluster.servers[1], c1).join("room1");
    await serverSocket(cluster.servers[2], c2).join("room1");
    const stop = expectNone(c0, "msg");
    const got = [nextEvent(c1, "msg"), nextEvent(c2, "msg")];
    cluster.servers[0]?.to("room1").emit("msg", "r1");
    expect(await Promise.all(got)).toEqual(["r1", "r1"]);
    // a later message to everyone proves c0 would have received a room message by now
    const sentinel = nextEvent(c0, "sentinel");
    cluster.servers[1]?.emit("sentinel");
    await sentinel;
    stop();
  });

  it("except excludes the members of a room on every server", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1, c2] = await clientsOf(cluster);
    if (!c0 || !c1 || !c2) throw new Error("clients");
    await serverSocket(cluster.servers[2], c2).join("muted");
    const stop = expectNone(c2, "msg");
    const got = [nextEvent(c0, "msg"), nextEvent(c1, "msg")];
    cluster.servers[1]?.except("muted").emit("msg", 7);
    expect(await Promise.all(got)).toEqual([7, 7]);
    const sentinel = nextEvent(c2, "sentinel");
    cluster.servers[1]?.emit("sentinel");
    await sentinel;
    stop();
  });

  it("a client in two target rooms receives a multi-room broadcast once", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1] = await clientsOf(cluster);
    if (!c0 || !c1) throw new Error("clients");
    await serverSocket(cluster.servers[1], c1).join(["a", "b"]);
    let count = 0;
    c1.on("multi", () => count++);
    cluster.servers[0]?.to(["a", "b", "c"]).emit("multi");
    const sentinel = nextEvent(c1, "sentinel");
    await waitFor(() => count >= 1);
    cluster.servers[0]?.emit("sentinel");
    await sentinel;
    expect(count).toBe(1);
  });

  it("an emit to a single socket id reaches that client on its server", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1, c2] = await clientsOf(cluster);
    if (!c0 || !c1 || !c2) throw new Error("clients");
    const stop = expectNone(c1, "private");
    const got = nextEvent(c2, "private");
    cluster.servers[0]?.to(c2.id ?? "").emit("private", "psst");
    expect(await got).toBe("psst");
    stop();
  });

  it("local broadcasts stay on their server", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1] = await clientsOf(cluster);
    if (!c0 || !c1) throw new Error("clients");
    const stop = expectNone(c1, "local");
    const got = nextEvent(c0, "local");
    cluster.servers[0]?.local.emit("local", 1);
    await got;
    const sentinel = nextEvent(c1, "sentinel");
    cluster.servers[0]?.emit("sentinel");
    await sentinel;
    stop();
  });

  it("binary payloads arrive byte-exact, nested in objects", async () => {
    const cluster = await startAmqpCluster();
    const [, c1] = await clientsOf(cluster);
    if (!c1) throw new Error("clients");
    const bytes = Buffer.from([0, 1, 2, 253, 254, 255]);
    const got = nextEvent<{ file: Buffer; name: string }>(c1, "bin");
    cluster.servers[0]?.emit("bin", { file: bytes, name: "x" });
    const value = await got;
    expect(Buffer.from(value.file).equals(bytes)).toBe(true);
    expect(value.name).toBe("x");
  });

  it("namespaces are isolated from each other", async () => {
    const cluster = await startAmqpCluster({ namespaces: ["/chat"] });
    const [main1] = [await cluster.client(1)];
    const chat2 = await cluster.client(2, "/chat");
    if (!main1) throw new Error("clients");
    const stop = expectNone(main1, "news");
    const got = nextEvent(chat2, "news");
    cluster.servers[0]?.of("/chat").emit("news", "n");
    expect(await got).toBe("n");
    const sentinel = nextEvent(main1, "sentinel");
    cluster.servers[0]?.emit("sentinel");
    await sentinel;
    stop();
  });

  it("fetchSockets returns the matching sockets of every server", async () => {
    const cluster = await startAmqpCluster();
    const clients = await clientsOf(cluster);
    await serverSocket(cluster.servers[2], clients[2] as ClientSocket).join("vip");
    const all = await cluster.servers[0]?.fetchSockets();
    expect(all?.map((s) => s.id).sort()).toEqual(clients.map((c) => c.id).sort());
    const vip = await cluster.servers[0]?.in("vip").fetchSockets();
    expect(vip?.map((s) => s.id)).toEqual([clients[2]?.id]);
    expect(vip?.[0]?.rooms.has("vip")).toBe(true);
  });

  it("socketsJoin and socketsLeave act on sockets of other servers", async () => {
    const cluster = await startAmqpCluster();
    const clients = await clientsOf(cluster);
    cluster.servers[0]?.socketsJoin("everyone");
    await waitFor(() =>
      cluster.servers.every((s) => s.of("/").adapter.rooms.get("everyone")?.size === 1),
    );
    const got = clients.map((c) => nextEvent(c, "e"));
    cluster.servers[1]?.to("everyone").emit("e");
    await Promise.all(got);
    cluster.servers[2]?.in("everyone").socketsLeave("everyone");
    await waitFor(() => cluster.servers.every((s) => !s.of("/").adapter.rooms.has("everyone")));
  });

  it("a broadcast right behind a socketsJoin from the same server reaches the new members", async () => {
    const cluster = await startAmqpCluster();
    const clients = await clientsOf(cluster);
    const got = clients.map((c) => nextEvent(c, "welcome"));
    cluster.servers[0]?.socketsJoin("fresh");
    cluster.servers[0]?.to("fresh").emit("welcome", "in order");
    expect(await Promise.all(got)).toEqual(["in order", "in order", "in order"]);
  });

  it("disconnectSockets disconnects clients on other servers", async () => {
    const cluster = await startAmqpCluster();
    const [c0, c1] = await clientsOf(cluster);
    if (!c0 || !c1) throw new Error("clients");
    await serverSocket(cluster.servers[1], c1).join("kick");
    const gone = nextEvent(c1, "disconnect");
    cluster.servers[0]?.in("kick").disconnectSockets();
    await gone;
    expect(c0.connected).toBe(true);
  });

  it("serverSideEmit reaches the other servers, with and without ack", async () => {
    const cluster = await startAmqpCluster();
    const seen: number[] = [];
    cluster.servers.forEach((s, i) => {
      s.on("ping", (arg: string, cb?: (v: string) => void) => {
        seen.push(i);
        cb?.(`pong-${i}-${arg}`);
      });
    });
    cluster.servers[0]?.serverSideEmit("ping", "x");
    await waitFor(() => seen.length === 2);
    expect(seen.sort()).toEqual([1, 2]);
    const responses = await cluster.servers[1]?.serverSideEmitWithAck("ping", "y");
    expect((responses as string[]).sort()).toEqual(["pong-0-y", "pong-2-y"]);
  });

  it("broadcast emitWithAck collects one ack per client across servers", async () => {
    const cluster = await startAmqpCluster();
    const clients = await clientsOf(cluster);
    clients.forEach((c, i) => {
      c.on("question", (cb: (v: number) => void) => cb(i));
    });
    const answers = await cluster.servers[0]?.timeout(5_000).emitWithAck("question");
    expect((answers as number[]).sort()).toEqual([0, 1, 2]);
  });

  it("serverCount counts every server, and drops one that closes", async () => {
    const cluster = await startAmqpCluster();
    expect(await cluster.adapter(0).serverCount()).toBe(3);
    await cluster.servers[2]?.close();
    await waitFor(async () => (await cluster.adapter(0).serverCount()) === 2, {
      timeoutMs: 3_000,
      message: "serverCount 2",
    });
  });

  it("a broadcast the broker cannot carry is still delivered locally, and its publish is counted as dropped and logged", async () => {
    const logger = recordingLogger();
    const cluster = await startAmqpCluster({ nodes: 2, adapter: { logger } });
    const [local, remote] = [await cluster.client(0), await cluster.client(1)];
    const stop = expectNone(remote, "odd");
    const got = nextEvent(local, "odd");
    // A function nested in the data: JSON (to the local client) leaves it out, MessagePack cannot encode it.
    cluster.servers[0]?.emit("odd", { n: 1, f: () => 1 });
    expect(await got).toEqual({ n: 1 });
    expect(cluster.adapter(0).stats().dropped).toBe(1);
    expect(logger.lines).toContainEqual(
      expect.objectContaining({
        level: "warn",
        message: "amqp publish failed, dropped",
        fields: expect.objectContaining({ reason: "unencodable" }),
      }),
    );
    cluster.servers[0]?.emit("sentinel");
    await nextEvent(remote, "sentinel");
    stop();
  });
});
