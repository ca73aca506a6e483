import type { Socket } from "socket.io-client";
import { expect } from "vitest";
import { request } from "../../support/clients.js";
import { waitFor } from "../../support/wait.js";
import { join, type SuiteContext, uniqueRoom } from "../context.js";

/**
 * The gateway writes a packet for an idle WebSocket client straight to its socket and everything
 * else through engine.io (services/gateway/fast-delivery.ts): clients on either path must see
 * the same packets in the same order, whatever the backplane.
 */
export function deliveryPathCases(ctx: SuiteContext): void {
  ctx.case(
    "delivery-paths",
    "WebSocket and polling clients in one room get the same packets in the same order, text, binary and client publishes alike",
    async () => {
      const room = uniqueRoom("paths");
      const clients: Socket[] = [];
      for (const i of [0, 1, 2]) {
        clients.push(await ctx.client(i));
        clients.push(await ctx.client(i, { transports: ["polling"] }));
      }
      const publisher = await ctx.client(1);
      await Promise.all(clients.map((c) => join(c, room)));
      const got = clients.map((c) => ctx.received(c, "seq"));
      const server: unknown[][] = [];
      for (let k = 0; k < 12; k++) {
        const args = k === 6 ? [k, Buffer.from([0, 1, 254, 255])] : [k, "é€😀".repeat(k * 20)];
        server.push(args);
        await ctx.node(0).control("emit", { to: [room], event: "seq", args });
      }
      const published: unknown[][] = [];
      for (let k = 0; k < 5; k++) {
        const data = { k, text: "x".repeat(k * 60) };
        published.push([data]);
        expect(await request(publisher, "publish", { room, event: "seq", data })).toEqual({
          ok: true,
        });
      }
      const total = server.length + published.length;
      await waitFor(() => got.every((list) => list.length >= total), {
        message: "every packet at every client",
      });
      const normalize = (args: unknown[]) =>
        args.map((a) =>
          a instanceof ArrayBuffer || Buffer.isBuffer(a) ? [...Buffer.from(a as Buffer)] : a,
        );
      const expectedServer = server.map(normalize);
      for (const list of got) {
        expect(list).toHaveLength(total);
        const normalized = list.map(normalize);
        // Each source's packets in its order; the two sources may interleave differently per node.
        expect(normalized.filter((args) => typeof args[0] === "number")).toEqual(expectedServer);
        expect(normalized.filter((args) => typeof args[0] !== "number")).toEqual(published);
      }
    },
  );
}
