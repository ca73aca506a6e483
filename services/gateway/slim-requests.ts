import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import type { Server } from "socket.io";

/**
 * Memory: what Engine.IO keeps of a connection's HTTP request, cut to what is read after the
 * connection is established. On 10,000 idle connections this is ~1 KB each (measured with
 * bench/heap-diff.ts; see docs/BENCHMARKS.md).
 *
 * 1. `conn.request`, the handshake request, lives as long as the connection. Socket.IO reads only
 *    its headers, url, query and TLS flag, when the client joins a namespace (socket.handshake):
 *    keep just those.
 * 2. For a WebSocket upgrade, engine.io 6.6 also builds a `WebSocketResponse` for its middlewares
 *    whose constructor listens `once("close")` on the TCP socket, which keeps the response and
 *    the whole upgrade `IncomingMessage` (parser state, raw headers, streams) alive until the
 *    socket closes. Nothing in the gateway listens to that response's `close` (its engine.io
 *    middlewares, CORS only, do not), so the listener is removed once engine.io has added it.
 *    Found by what engine.io's upgrade listener adds: exactly one `once` listener on `close`;
 *    anything else (another engine.io) and nothing is removed.
 */
export function slimRequests(io: Server, server: HttpServer | HttpsServer, path: string): void {
  io.engine.on("connection", (conn: { request: IncomingMessage }) => {
    conn.request = slimRequest(conn.request);
  });

  // Close listeners of each upgrading socket before engine.io's upgrade listener runs.
  const before = new WeakMap<Duplex, number>();
  const ours = (req: IncomingMessage) => req.url?.startsWith(path) === true;
  server.prependListener("upgrade", (req: IncomingMessage, socket: Duplex) => {
    if (ours(req)) before.set(socket, socket.listenerCount("close"));
  });
  // Added after Socket.IO attached engine.io's: runs right after it, on the same event.
  server.on("upgrade", (_req: IncomingMessage, socket: Duplex) => {
    const count = before.get(socket);
    before.delete(socket);
    if (count === undefined) return;
    const added = socket.rawListeners("close").slice(count);
    const once = added.filter(
      (fn) => typeof (fn as { listener?: unknown }).listener === "function",
    );
    if (once.length === 1 && once[0] !== undefined) {
      socket.removeListener("close", once[0] as (...args: unknown[]) => void);
    }
  });
}

/** The TLS flag as Socket.IO reads it (`req.connection.encrypted`), one object for every request. */
const PLAIN = Object.freeze({ encrypted: false });
const ENCRYPTED = Object.freeze({ encrypted: true });

/** What Socket.IO's handshake reads from the upgrade request, and nothing more. */
export function slimRequest(req: IncomingMessage): IncomingMessage {
  const tls =
    (req.socket as { encrypted?: boolean } | null)?.encrypted === true ? ENCRYPTED : PLAIN;
  const slim = {
    headers: req.headers,
    url: req.url,
    method: req.method,
    _query: (req as IncomingMessage & { _query?: unknown })._query,
    connection: tls,
    socket: tls,
  };
  return slim as unknown as IncomingMessage;
}
