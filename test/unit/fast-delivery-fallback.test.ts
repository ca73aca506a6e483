import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server } from "socket.io";
import { io as connect, type Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { createFastDelivery } from "../../services/gateway/fast-delivery.js";
import { createLogger } from "../../services/gateway/logger.js";
import { waitFor } from "../support/wait.js";

/**
 * The fast path reads engine.io's private connection state. If a later engine.io changes it,
 * deliveries must go on through the stock path, not throw out of a broadcast loop. (Its own file:
 * the fast path's state is per process.)
 */
describe("the fast path when engine.io's internals are not as it learnt them", () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it("turns itself off and every message still arrives, in order", async () => {
    const http = createServer();
    const io = new Server(http);
    closers.push(() => new Promise<void>((resolve) => io.close(() => resolve())));
    const delivery = createFastDelivery(io, createLogger({ gatewayId: "t", level: "silent" }));
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    const port = (http.address() as AddressInfo).port;

    const client: Socket = connect(`http://127.0.0.1:${port}`, {
      transports: ["websocket"],
      reconnection: false,
    });
    closers.push(async () => {
      client.close();
    });
    const received: string[] = [];
    client.on("m", (value: string) => received.push(value));
    await new Promise<void>((resolve) => client.on("connect", () => resolve()));
    const [socket] = await io.fetchSockets();
    if (socket === undefined) throw new Error("no socket");

    io.emit("m", "one");
    await waitFor(() => received.length === 1, { timeoutMs: 5000 });
    expect(delivery.stats().fast).toBe(1);

    // An engine.io whose connection no longer reads as it did: listenerCount throws.
    const conn = (io.sockets.sockets.get(socket.id) as unknown as { conn: object }).conn;
    Object.defineProperty(conn, "listenerCount", {
      configurable: true,
      value: () => {
        throw new TypeError("not what the fast path learnt");
      },
    });
    const stockBefore = delivery.stats().stock;
    io.emit("m", "two");
    io.emit("m", "three");
    await waitFor(() => received.length === 3, { timeoutMs: 5000 });

    expect(received).toEqual(["one", "two", "three"]);
    expect(delivery.enabled).toBe(false);
    expect(delivery.stats().fast).toBe(1);
    expect(delivery.stats().stock).toBe(stockBefore + 2);
  });
});
