import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { describe, expect, it, onTestFinished } from "vitest";
import { deliver } from "../../services/gateway/deliver.js";
import { waitFor } from "../support/wait.js";

/** One in-process server (memory adapter): deliver's part is the emit, not the backplane. */
async function setUp() {
  const http = createServer();
  const io = new Server(http);
  io.of("/admin");
  io.on("connection", (socket) => {
    socket.on("join", (rooms: string[], ack: () => void) => {
      socket.join(rooms);
      ack();
    });
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const port = (http.address() as AddressInfo).port;
  const sockets: Socket[] = [];
  onTestFinished(async () => {
    for (const socket of sockets) socket.disconnect();
    await io.close();
  });
  const client = async (rooms: string[], nsp = "/") => {
    const socket = connect(`http://127.0.0.1:${port}${nsp}`, {
      transports: ["websocket"],
      forceNew: true,
    });
    sockets.push(socket);
    const received: unknown[][] = [];
    socket.on("message", (...args: unknown[]) => received.push(args));
    if (nsp === "/") await socket.emitWithAck("join", rooms);
    else await new Promise((resolve) => socket.once("connect", () => resolve(undefined)));
    return received;
  };
  return { io, client };
}

const SERVED = new Set(["/", "/admin"]);

describe("deliver: the emit every publishing path ends in", () => {
  it("reaches the rooms minus except, with data first and {id} second", async () => {
    const { io, client } = await setUp();
    const inRoom = await client(["chat:1"]);
    const muted = await client(["chat:1", "muted"]);
    const elsewhere = await client(["chat:2"]);
    deliver(
      io,
      {
        v: 1,
        id: "a1",
        rooms: ["chat:1"],
        except: ["muted"],
        event: "message",
        data: { t: 1 },
      },
      SERVED,
    );
    deliver(io, { v: 1, event: "message", data: "all" }, SERVED);
    await waitFor(() =>
      [inRoom, muted, elsewhere].every((r) => r.some((args) => args[0] === "all")),
    );
    expect(inRoom).toEqual([[{ t: 1 }, { id: "a1" }], ["all"]]);
    expect(muted).toEqual([["all"]]);
    expect(elsewhere).toEqual([["all"]]);
  });

  it("sends null when data is absent, and only to the command's namespace", async () => {
    const { io, client } = await setUp();
    const root = await client([]);
    const admin = await client([], "/admin");
    deliver(io, { v: 1, namespace: "/admin", event: "message" }, SERVED);
    deliver(io, { v: 1, event: "message", data: "root" }, SERVED);
    await waitFor(() => admin.length === 1 && root.length === 1);
    expect(admin).toEqual([[null]]);
    expect(root).toEqual([["root"]]);
  });

  it("refuses a namespace the server does not have, without creating it", async () => {
    const { io } = await setUp();
    const before = [...io._nsps.keys()];
    expect(() => deliver(io, { v: 1, namespace: "/../..", event: "message" }, SERVED)).toThrow(
      expect.objectContaining({
        code: "SWB_ERR_INVALID_ARGUMENT",
        message: 'namespace "/../.." is not served (NAMESPACES)',
      }),
    );
    expect([...io._nsps.keys()]).toEqual(before);
  });

  it("refuses a namespace the server has but NAMESPACES leaves out: Socket.IO's own /", async () => {
    const { io, client } = await setUp();
    const root = await client([]);
    const command = { v: 1, event: "message", data: "root" } as const;
    expect(() => deliver(io, command, new Set(["/admin"]))).toThrow(
      expect.objectContaining({
        code: "SWB_ERR_INVALID_ARGUMENT",
        message: 'namespace "/" is not served (NAMESPACES)',
      }),
    );
    // Served, the same command is delivered.
    deliver(io, command, SERVED);
    await waitFor(() => root.length === 1);
  });
});
