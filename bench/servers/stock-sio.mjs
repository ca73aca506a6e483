// The stock baseline: Socket.IO 4 as its documentation shows it, speaking the Switchboard client
// protocol (join/leave/publish/whoami with acks). With a REDIS_URL argument it uses the classic
// @socket.io/redis-adapter over two ioredis connections; without, the default in-memory adapter.
// No Switchboard code: this is what Switchboard is compared against.
//   node stock-sio.mjs <port> [redis://...]
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? 3000);
const redisUrl = process.argv[3];
const http = createServer();
const io = new Server(http, { serveClient: false });
if (redisUrl) {
  // Loaded only for the redis cells, so the in-memory baseline's base RSS is Socket.IO's alone.
  const { createAdapter } = await import("@socket.io/redis-adapter");
  const { Redis } = await import("ioredis");
  const pub = new Redis(redisUrl);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));
}

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room !== "string" || typeof ack !== "function") return;
    socket.join(room);
    ack({ ok: true });
  });
  socket.on("leave", (room, ack) => {
    if (typeof room !== "string" || typeof ack !== "function") return;
    socket.leave(room);
    ack({ ok: true });
  });
  socket.on("publish", (msg, ack) => {
    if (typeof ack !== "function") return;
    if (!msg || typeof msg.room !== "string" || typeof msg.event !== "string") {
      return ack({ error: "invalid_payload" });
    }
    socket.to(msg.room).emit(msg.event, msg.data);
    ack({ ok: true });
  });
  socket.on("whoami", (ack) => {
    if (typeof ack === "function") ack({ id: socket.id, gateway: `stock-${port}`, rooms: [] });
  });
});

http.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
