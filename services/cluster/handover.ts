import cluster, { type Worker } from "node:cluster";
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { createServer, type Server, Socket } from "node:net";
import type { Server as SocketIoServer } from "socket.io";
import type { Logger } from "../gateway/logger.js";
import {
  CONNECTION_MESSAGE,
  type ConnectionMessage,
  isConnectionMessage,
  sessionIdFor,
  workerIdOf,
} from "./handover-messages.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { setupPrimary } = createRequire(import.meta.url)(
  "@socket.io/cluster-adapter",
) as typeof import("@socket.io/cluster-adapter");

/**
 * How `switchboard cluster` gives each connection to one worker, keeping an Engine.IO session's
 * HTTP long-polling requests on the worker that holds the session.
 *
 * The primary owns the port. It reads a connection's request head (request line and headers,
 * bounded in time by HTTP_HEADERS_TIMEOUT_MS and in size like Node's HTTP server: 408 or 431
 * otherwise), picks a worker from the `sid` query parameter (a worker's session ids carry its
 * cluster id: `sessionIdFor`) or else the worker with the fewest sessions (counted from the
 * workers' reports over IPC), stops reading, and sends the socket with
 * the bytes it read to that worker over IPC. The worker injects the connection into its HTTP
 * server, replays those bytes, and owns the connection from then on: it reads the body itself,
 * straight from the socket, and the primary keeps nothing of it.
 *
 * A worker answers every HTTP request with `Connection: close`: a keep-alive connection would
 * carry the client's next request to the same worker, whichever session it is for (browsers
 * pool connections across tabs, python-socketio reuses its HTTP session), and only the primary
 * can route it. Each long-polling request is a new connection the primary routes; a WebSocket
 * is one connection for its whole life.
 *
 * This replaces @socket.io/sticky 1.0.4, which forwarded request bodies to workers as UTF-8
 * strings (a multi-byte character split between two TCP reads was corrupted, and the request
 * refused), kept POST connections open in the primary after the worker closed them (the client's
 * next request on the connection then hung), and left the workers' HTTP timeouts unenforced.
 */

const SESSION_OPENED = "switchboard:session-opened";
const SESSION_CLOSED = "switchboard:session-closed";

/** Node's default --max-http-header-size, which a gateway's own HTTP server applies. */
const MAX_HEAD_BYTES = 16 * 1024;
const HEAD_END = Buffer.from("\r\n\r\n");
/** How long a handshake handed over counts toward its worker's sessions before it opened one. */
const OPENING_MS = 10_000;
/** Engine.IO session ids (base64id: 20 characters of base64url). */
const SID = /[?&]sid=([\w-]{20})(?:[&#\s]|$)/;

interface SessionMessage {
  type: typeof SESSION_OPENED | typeof SESSION_CLOSED;
  sid: string;
}

/**
 * The primary's side, with cluster-adapter relaying between workers. Call before forking.
 * `headersTimeout`: ms a client has to send its request head.
 */
export function setupHandoverPrimary(options: {
  headersTimeout: number;
  /** A worker gets new connections only once ready, unless no worker is ready. */
  isReady(worker: Worker): boolean;
  /** Requests the primary answers itself (by request line), on this HTTP server of its own. */
  local?: { matches(requestLine: string): boolean; server: HttpServer };
}): Server {
  // "advanced" (structured clone) keeps Buffers binary between workers, as the cluster adapter
  // and the hand-over require; JSON would turn them into {type: "Buffer", data: [...]}.
  cluster.setupPrimary({ serialization: "advanced" });
  setupPrimary();

  const sessions = new Map<Worker, number>();
  // Handshakes handed to a worker whose session it has not reported yet (when they were handed
  // over): a burst of handshakes would otherwise all see the same counts and go to one worker.
  const opening = new Map<Worker, number[]>();
  const openingCount = (worker: Worker, now: number) => {
    const times = opening.get(worker);
    while (times !== undefined && times.length > 0 && now - (times[0] ?? 0) > OPENING_MS)
      times.shift();
    return times?.length ?? 0;
  };
  let turn = 0;

  cluster.on("message", (worker, message: unknown) => {
    const m = message as Partial<SessionMessage> | null;
    if (typeof m?.sid !== "string") return;
    if (m.type === SESSION_OPENED) {
      opening.get(worker)?.shift();
      sessions.set(worker, (sessions.get(worker) ?? 0) + 1);
    } else if (m.type === SESSION_CLOSED) {
      sessions.set(worker, Math.max(0, (sessions.get(worker) ?? 0) - 1));
    }
  });
  cluster.on("exit", (worker) => {
    sessions.delete(worker);
    opening.delete(worker);
  });

  const pick = (head: Buffer): Worker | undefined => {
    const line = head.toString("latin1", 0, Math.max(0, head.indexOf("\r\n")));
    const sid = SID.exec(line)?.[1];
    // The session's worker, named in its id (sessionIdFor); gone with its worker, the session
    // goes to another one, which answers "Session ID unknown" and the client starts over.
    const ownerId = sid === undefined ? undefined : workerIdOf(sid);
    const owner = ownerId === undefined ? undefined : cluster.workers?.[ownerId];
    if (owner?.isConnected()) return owner;
    const now = Date.now();
    // The fewest sessions among ready workers; a loading worker only when none is ready (it
    // holds the connection until it can serve it). Ties go round: handshakes that arrive together
    // all see the counts from before any of them opened a session.
    const workers = Object.values(cluster.workers ?? {});
    const start = turn++;
    let best: Worker | undefined;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let i = 0; i < workers.length; i++) {
      const worker = workers[(start + i) % workers.length];
      if (!worker?.isConnected()) continue;
      const score =
        (sessions.get(worker) ?? 0) +
        openingCount(worker, now) +
        (options.isReady(worker) ? 0 : 1e9);
      if (score < bestScore) {
        best = worker;
        bestScore = score;
      }
    }
    if (best !== undefined && sid === undefined && line.includes("EIO=")) {
      const times = opening.get(best) ?? [];
      times.push(now);
      opening.set(best, times);
    }
    return best;
  };

  const server = createServer((socket) => {
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on("error", () => socket.destroy());
    const timer = setTimeout(() => refuse(socket, "408 Request Timeout"), options.headersTimeout);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const read = chunks.length === 1 ? chunk : Buffer.concat(chunks, size);
      // The head ends at the first blank line; search from where the last chunk could complete it.
      const end = read.indexOf(HEAD_END, Math.max(0, size - chunk.length - 3));
      if (end === -1) {
        if (size > MAX_HEAD_BYTES) {
          clearTimeout(timer);
          socket.off("data", onData);
          refuse(socket, "431 Request Header Fields Too Large");
        }
        return;
      }
      clearTimeout(timer);
      socket.off("data", onData);
      // Nothing more is read here: what the client sends next stays in the kernel's buffer for
      // the worker to read.
      (socket as Socket & { _handle?: { readStop?: () => void } | null })._handle?.readStop?.();
      socket.pause();
      const local = options.local;
      if (local?.matches(read.toString("latin1", 0, Math.max(0, read.indexOf("\r\n"))))) {
        local.server.emit("connection", socket);
        socket.emit("data", read);
        socket.resume();
        return;
      }
      const worker = pick(read);
      if (!worker) {
        refuse(socket, "503 Service Unavailable");
        return;
      }
      const message: ConnectionMessage = { type: CONNECTION_MESSAGE, head: read };
      worker.send(message, socket, { keepOpen: false }, (err) => {
        if (err) socket.destroy();
      });
    };
    socket.on("data", onData);
    socket.once("close", () => clearTimeout(timer));
  });

  return server;
}

/** Answers a connection the primary will not hand over, then closes it. */
function refuse(socket: Socket, status: string): void {
  if (socket.destroyed) return;
  socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  // A client that does not read its answer does not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
}

/**
 * The worker's side: connections from the primary go to the gateway's HTTP server (which does not
 * listen itself), each session's opening and closing is reported to the primary, and the server's
 * header and request timeouts are enforced here too.
 */
export function setupHandoverWorker(io: SocketIoServer, logger: Logger): void {
  const httpServer = io.httpServer as HttpServer;
  // Node starts checking HTTP_HEADERS_TIMEOUT_MS and HTTP_REQUEST_TIMEOUT_MS when a server starts
  // listening, which this one never does: start that check now, as 'listening' would.
  const track = httpServer
    .listeners("listening")
    .find((listener) => listener.name === "setupConnectionsTracking");
  if (track) track.call(httpServer);
  else
    logger.warn(
      "cluster worker: Node's HTTP connection checks not found: HTTP_REQUEST_TIMEOUT_MS is enforced only by the primary for request heads",
    );
  // Session ids that name this worker, so that the primary routes their requests here.
  const workerId = cluster.worker?.id;
  if (workerId !== undefined) {
    (io.engine as unknown as { generateId: () => string }).generateId = () =>
      sessionIdFor(workerId);
  }
  // One request per connection: its answer says `Connection: close`, and a request pipelined
  // behind it on the same connection is not carried out (HTTP/1.1: the client retries it on a
  // new connection, which the primary routes); Node would otherwise run it and drop its answer.
  const served = new WeakSet<object>();
  const emit = httpServer.emit;
  httpServer.emit = function (this: HttpServer, event: string | symbol, ...args: unknown[]) {
    if (event === "request") {
      const [req, res] = args as [IncomingMessage, ServerResponse];
      // Not handed to the gateway: Node closes the connection once the first answer is sent.
      if (served.has(req.socket)) return true;
      served.add(req.socket);
      res.shouldKeepAlive = false;
    }
    return (emit as (event: string | symbol, ...args: unknown[]) => boolean).call(
      this,
      event,
      ...args,
    );
  } as typeof httpServer.emit;

  process.on("message", (message: unknown, handle: unknown) => {
    if (!isConnectionMessage(message) || !(handle instanceof Socket)) return;
    const { head } = message;
    httpServer.emit("connection", handle);
    handle.emit("data", Buffer.from(head.buffer, head.byteOffset, head.byteLength));
    handle.resume();
  });

  const report = (type: SessionMessage["type"], sid: string) => {
    if (process.connected) process.send?.({ type, sid }, undefined, {}, () => {});
  };
  io.engine.on(
    "connection",
    (socket: { id: string; once(event: "close", fn: () => void): void }) => {
      report(SESSION_OPENED, socket.id);
      socket.once("close", () => report(SESSION_CLOSED, socket.id));
    },
  );
}
