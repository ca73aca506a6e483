import type { Server as HttpServer, IncomingMessage } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import type { Server } from "socket.io";
import { clientAddress, type TrustedProxies } from "./client-address.js";
import type { Logger } from "./logger.js";

/**
 * Who may open an Engine.IO connection at all, decided on the handshake request of both
 * transports (the WebSocket upgrade included, where CORS headers protect nothing):
 * - not while the gateway drains (clients go to another gateway);
 * - a browser `Origin` must be one of CORS_ORIGINS when that is set (clients that send no Origin
 *   are not browsers, and CORS does not concern them);
 * - at most MAX_CONNECTIONS_PER_IP open connections per client address.
 *
 * A refused request gets HTTP 403 with Engine.IO's `{code: 4, message}` body; the client sees
 * `connect_error` with that message.
 */

export type AdmissionRefusal = "draining" | "origin_not_allowed" | "too_many_connections";

/**
 * Connection counts kept for several processes together (the `switchboard cluster` primary for its
 * workers), so that MAX_CONNECTIONS_PER_IP holds for the whole port, not per process.
 */
export interface SharedConnectionCount {
  /** Open connections of `address` across every process sharing the count. */
  count(address: string): Promise<number>;
  /** Records one more connection of `address`; resolves with the new total. */
  opened(address: string): Promise<number>;
  closed(address: string): void;
}

export interface AdmissionOptions {
  /** Allowed origins; empty or containing `*`: every origin. */
  origins: readonly string[];
  /** 0: no limit. */
  maxConnectionsPerIp: number;
  proxies: TrustedProxies;
  isDraining: () => boolean;
  logger: Logger;
  /** Counts shared with other processes; default: this process's own. */
  shared?: SharedConnectionCount;
  onRefused?: (reason: AdmissionRefusal) => void;
}

type AllowRequest = (
  req: IncomingMessage,
  callback: (err: string | null, ok: boolean) => void,
) => void;

/** Engine.IO's error code for a handshake `allowRequest` refused. */
const FORBIDDEN = 4;

const MESSAGES: Record<AdmissionRefusal, string> = {
  draining: "draining",
  origin_not_allowed: "origin not allowed",
  too_many_connections: "too many connections",
};

export interface Admission {
  allowRequest: AllowRequest;
  /**
   * engine.io answers a refused WebSocket handshake with 400; this answers it 403 with the same
   * body as on long-polling, before engine.io sees it (call before creating the Socket.IO server
   * or after: the listener goes first). `path`: Engine.IO's path, e.g. `/socket.io/`.
   */
  guardUpgrades(server: HttpServer | HttpsServer, path: string): void;
  /**
   * Counts connections per address and closes any over the limit (call once io exists). Without
   * a limit it does nothing: no per-connection work.
   */
  track(io: Server): void;
}

export function createAdmission(options: AdmissionOptions): Admission {
  const anyOrigin = options.origins.length === 0 || options.origins.includes("*");
  const origins = new Set(options.origins);
  const open = new Map<string, number>();
  const addressOf = (peer: string | undefined, headers: IncomingMessage["headers"]) =>
    clientAddress(peer, headers["x-forwarded-for"], options.proxies);

  const refuse = (reason: AdmissionRefusal, address: string, extra: object = {}) => {
    options.onRefused?.(reason);
    options.logger.debug({ address, reason, ...extra }, "connection refused");
    return MESSAGES[reason];
  };

  const max = options.maxConnectionsPerIp;
  const shared = options.shared;

  /** The verdict on everything but the shared count: a refusal message, or the address. */
  const verdict = (req: IncomingMessage): { err: string } | { address: string } => {
    const address = addressOf(req.socket.remoteAddress, req.headers);
    if (options.isDraining()) return { err: MESSAGES.draining };
    const origin = req.headers.origin;
    if (!anyOrigin && origin !== undefined && !origins.has(origin)) {
      return { err: refuse("origin_not_allowed", address, { origin: origin.slice(0, 200) }) };
    }
    if (max > 0 && !shared && (open.get(address) ?? 0) >= max) {
      return { err: refuse("too_many_connections", address) };
    }
    return { address };
  };

  const decide: AllowRequest = (req, callback) => {
    const result = verdict(req);
    if ("err" in result) return callback(result.err, false);
    if (max === 0 || !shared) return callback(null, true);
    shared.count(result.address).then(
      (count) => {
        if (count < max) return callback(null, true);
        callback(refuse("too_many_connections", result.address), false);
      },
      (err: unknown) => {
        // The shared count did not answer: this process's own count still bounds the address.
        options.logger.warn({ err }, "shared connection count unavailable");
        const ok = (open.get(result.address) ?? 0) < max;
        callback(ok ? null : refuse("too_many_connections", result.address), ok);
      },
    );
  };
  /** Handshakes already decided by the upgrade guard: engine.io's own check reuses the verdict. */
  const decided = new WeakMap<IncomingMessage, Promise<string | null>>();

  return {
    allowRequest: (req, callback) => {
      const decision = decided.get(req);
      if (!decision) return decide(req, callback);
      decided.delete(req);
      // A refused upgrade was answered already (403): engine.io must not answer it again.
      decision.then((err) => {
        if (err === null) callback(null, true);
      });
    },
    guardUpgrades(server, path) {
      server.prependListener("upgrade", (req: IncomingMessage, socket: Duplex) => {
        // Engine.IO's own test for its requests; an upgrade of an open session (sid) is no handshake.
        if (!req.url?.startsWith(path) || new URL(req.url, "http://x").searchParams.has("sid")) {
          return;
        }
        const decision = new Promise<string | null>((resolve) =>
          decide(req, (err) => resolve(err)),
        );
        decided.set(req, decision);
        decision.then((err) => {
          if (err === null) return;
          if (!socket.writable) return void socket.destroy();
          const body = JSON.stringify({ code: FORBIDDEN, message: err });
          socket.on("error", () => {}); // the client may be gone already
          socket.once("finish", () => socket.destroy());
          socket.end(
            `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
        });
      });
    },
    track(io) {
      if (max === 0) return;
      io.engine.on("connection", (conn: EngineConnection) => {
        const address = addressOf(conn.remoteAddress, conn.request.headers);
        const count = (open.get(address) ?? 0) + 1;
        open.set(address, count);
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          const left = (open.get(address) ?? 1) - 1;
          if (left <= 0) open.delete(address);
          else open.set(address, left);
          shared?.closed(address);
        };
        conn.once("close", release);
        // A server-side close (HANDSHAKE_TIMEOUT_MS, a refusal) of a long-polling connection ends
        // only at the client's next request or Engine.IO's timeouts: the slot is free at once.
        const close = conn.close;
        conn.close = function (this: EngineConnection, ...args: unknown[]) {
          release();
          return close.apply(this, args);
        };
        // Handshakes in flight together all passed the check: the ones over the limit go now.
        const overLimit = () => {
          refuse("too_many_connections", address);
          conn.close();
        };
        if (!shared) {
          if (count > max) overLimit();
          return;
        }
        shared.opened(address).then(
          (total) => {
            if (total > max && !released) overLimit();
          },
          (err: unknown) => options.logger.warn({ err }, "shared connection count unavailable"),
        );
      });
    },
  };
}

/** The part of an Engine.IO socket this module uses. */
interface EngineConnection {
  remoteAddress: string;
  request: { headers: IncomingMessage["headers"] };
  once(event: "close", listener: () => void): void;
  close(...args: unknown[]): unknown;
}
