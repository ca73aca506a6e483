import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createFastDelivery, frameTextPacket } from "../../services/gateway/fast-delivery.js";
import { createLogger } from "../../services/gateway/logger.js";
import { waitFor } from "../support/wait.js";

/**
 * On a gateway with the fast path, adapters no longer frame a broadcast when they encode it: the
 * frame is built once, at the first write that needs it, and a recipient on the stock path gets
 * that same frame. (Its own file: the fast path's state is per process.)
 */
describe("broadcast frames on a gateway with the fast path", () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  async function server(fast: boolean) {
    const http = createServer();
    const io = new Server(http);
    closers.push(() => new Promise<void>((resolve) => io.close(() => resolve())));
    const delivery = fast
      ? createFastDelivery(io, createLogger({ gatewayId: "t", level: "silent" }))
      : undefined;
    io.on("connection", (socket) => socket.join("room"));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    return { io, delivery, url };
  }

  async function client(url: string, io: Server) {
    const socket: Socket = connect(url, { transports: ["websocket"], reconnection: false });
    closers.push(async () => {
      socket.close();
    });
    const received: unknown[] = [];
    socket.on("m", (value: unknown) => received.push(value));
    await new Promise<void>((resolve) => socket.on("connect", () => resolve()));
    await waitFor(
      () =>
        io
          .of("/")
          .adapter.rooms.get("room")
          ?.has(socket.id as string) === true,
      {
        timeoutMs: 5000,
      },
    );
    const conn = (
      io.of("/").sockets.get(socket.id as string) as unknown as { conn: NodeJS.EventEmitter }
    ).conn;
    return { received, conn };
  }

  /** The options engine.io got with each packet written to `conn` the stock way. */
  function stockWrites(conn: NodeJS.EventEmitter) {
    const frames: unknown[] = [];
    conn.on("packetCreate", (packet: { options?: { wsPreEncodedFrame?: unknown } }) => {
      if (packet.options?.wsPreEncodedFrame !== undefined)
        frames.push(packet.options.wsPreEncodedFrame);
    });
    return frames;
  }

  it("a stock-path recipient gets the fast path's one frame, a fast one the same bytes, in order", async () => {
    const { io, delivery, url } = await server(true);
    const fastClient = await client(url, io);
    const stockClient = await client(url, io);
    // Someone listening to engine.io's packet events: that connection takes the stock path.
    const frames = stockWrites(stockClient.conn);
    for (let i = 0; i < 20; i++) io.to("room").emit("m", { i, text: "é" });
    const expected = Array.from({ length: 20 }, (_, i) => ({ i, text: "é" }));
    await waitFor(() => fastClient.received.length === 20 && stockClient.received.length === 20, {
      timeoutMs: 5000,
    });
    expect(fastClient.received).toEqual(expected);
    expect(stockClient.received).toEqual(expected);
    expect(delivery?.stats().fast).toBeGreaterThanOrEqual(20);
    expect(frames).toHaveLength(20);
    expect(frames[0]).toEqual([frameTextPacket('2["m",{"i":0,"text":"é"}]')]);
  });

  it("a Socket.IO server without the fast path keeps stock's framing", async () => {
    await server(true); // the process-wide patches are in place
    const { io, url } = await server(false);
    const stockClient = await client(url, io);
    const frames = stockWrites(stockClient.conn);
    io.to("room").emit("m", 1);
    await waitFor(() => stockClient.received.length === 1, { timeoutMs: 5000 });
    expect(frames).toHaveLength(1);
    const [header, payload] = frames[0] as Buffer[];
    expect(payload?.toString()).toBe('42["m",1]');
    expect(Buffer.concat([header as Buffer, payload as Buffer])).toEqual(
      frameTextPacket('2["m",1]'),
    );
  });
});
