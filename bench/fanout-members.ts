import type { Socket } from "socket.io-client";
import { connectClient, request } from "../test/support/clients.js";
import { now } from "./stats.js";

/**
 * Child of bench/fanout-order.ts: `count` members of `room` on `url`, timing each `m` event;
 * says "ready" once all joined, sends the latencies when asked, then closes them and exits.
 */
const [url = "", count = "0", room = ""] = process.argv.slice(2);
const latencies: number[] = [];
const sockets: Socket[] = [];
for (let i = 0; i < Number(count); i++) {
  const socket = await connectClient(url);
  sockets.push(socket);
  await request(socket, "join", room);
  socket.on("m", (d: { t: number }) => latencies.push(now() - d.t));
}
process.send?.("ready");
process.once("message", () => {
  process.send?.(latencies, () => {
    for (const s of sockets) s.disconnect();
    process.exit(0);
  });
});
