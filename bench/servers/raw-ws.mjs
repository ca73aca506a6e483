// The ceiling: a plain `ws` broadcast server, rooms in a Map, JSON frames, acks. It speaks the
// same join/publish protocol as the Socket.IO targets, framed by hand:
//   client -> server  {"op":"join","room":"r","id":1}
//                     {"op":"publish","room":"r","event":"e","data":...,"id":2}
//   server -> client  {"ack":1,"ok":true}            (reply to id 1)
//                     ["e", data]                    (a delivery, encoded once per publish)
// No validation beyond what keeps it running: it is the lower bound, not a product.
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.argv[2] ?? 3000);
const http = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("raw-ws\n");
});
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
const rooms = new Map();

wss.on("connection", (ws) => {
  const joined = new Set();
  ws.on("message", (raw) => {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      return ws.close(1003, "bad frame");
    }
    if (msg.op === "publish") {
      const members = rooms.get(msg.room);
      if (members !== undefined) {
        const frame = JSON.stringify([msg.event, msg.data]);
        for (const member of members) if (member !== ws) member.send(frame);
      }
    } else if (msg.op === "join" && typeof msg.room === "string") {
      let members = rooms.get(msg.room);
      if (members === undefined) {
        members = new Set();
        rooms.set(msg.room, members);
      }
      members.add(ws);
      joined.add(msg.room);
    }
    if (msg.id !== undefined) ws.send(`{"ack":${Number(msg.id)},"ok":true}`);
  });
  ws.on("close", () => {
    for (const room of joined) {
      const members = rooms.get(room);
      members?.delete(ws);
      if (members?.size === 0) rooms.delete(room);
    }
  });
  ws.on("error", () => ws.terminate());
});

http.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
