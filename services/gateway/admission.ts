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
 * - at most MAX_CONNECTIONS_PER_IP open connections per client address: a handshake takes a slot
 *   (`ConnectionSlots`) before it is admitted, and when the slots cannot be had (a cluster primary
 *   that does not answer) it is refused, never admitted unchecked.
 *
 * A refused request gets HTTP 403 with Engine.IO's `{code: 4, message}` body; the client sees
 * `connect_error` with that message.
 */

export type AdmissionRefusal =
  | "draining"
  | "origin_not_allowed"
  | "too_many_connections"
  | "admission_unavailable";

/**
 * The MAX_CONNECTIONS_PER_IP slots of every address, kept by this process (`localSlots`) or for
 * several processes together (the `switchboard cluster` primary for its workers), so that the
 * limit holds for the whole port. Checking and counting are one step (`reserve`): handshakes in
 * flight together never all see the same free slot.
 */
export interface ConnectionSlots {
  /**
   * Takes one of `address`'s slots: true, or false when all are taken. Rejects when the keeper
   * cannot answer; the handshake is then refused (fail closed).
   */
  reserve(address: string): boolean | Promise<boolean>;
  /** Gives back a slot `reserve` took. */
  release(address: string): void;
}

/**
 * Slots taken per address, and by which owner: one owner in a gateway of its own (`localSlots`),
 * a worker each in a cluster primary's table (freed when it exits).
 */
export class SlotTable<Owner> {
  private readonly totals = new Map<string, number>();
  private readonly byOwner = new Map<Owner, Map<string, number>>();

  constructor(private readonly max: number) {}

  /** Takes a slot of `address` for `owner` if one is free. */
  reserve(owner: Owner, address: string): boolean {
    const total = this.totals.get(address) ?? 0;
    if (total >= this.max) return false;
    this.totals.set(address, total + 1);
    let held = this.byOwner.get(owner);
    if (!held) {
      held = new Map();
      this.byOwner.set(owner, held);
    }
    held.set(address, (held.get(address) ?? 0) + 1);
    return true;
  }

  /** Gives back one of `owner`'s slots of `address`; one it does not hold is ignored. */
  release(owner: Owner, address: string): void {
    const held = this.byOwner.get(owner);
    const count = held?.get(address) ?? 0;
    if (!held || count === 0) return;
    if (count > 1) held.set(address, count - 1);
    else held.delete(address);
    this.drop(address, 1);
  }

  /** Frees every slot `owner` holds. */
  releaseAll(owner: Owner): void {
    const held = this.byOwner.get(owner);
    this.byOwner.delete(owner);
    for (const [address, count] of held ?? []) this.drop(address, count);
  }

  /** Slots of `address` taken, by every owner. */
  taken(address: string): number {
    return this.totals.get(address) ?? 0;
  }

  private drop(address: string, count: number): void {
    const left = (this.totals.get(address) ?? 0) - count;
    if (left > 0) this.totals.set(address, left);
    else this.totals.delete(address);
  }
}

/** Slots kept by this process alone. */
export function localSlots(max: number): ConnectionSlots {
  const table = new SlotTable<null>(max);
  return {
    reserve: (address) => table.reserve(null, address),
    release: (address) => table.release(null, address),
  };
}

export interface AdmissionOptions {
  /** Allowed origins; empty or containing `*`: every origin. */
  origins: readonly string[];
  /** 0: no limit. */
  maxConnectionsPerIp: number;
  proxies: TrustedProxies;
  isDraining: () => boolean;
  logger: Logger;
  /** Slots shared with other processes; default: this process's own (`localSlots`). */
  slots?: ConnectionSlots;
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
  admission_unavailable: "admission unavailable",
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
   * Hands each handshake's slot to its connection, which gives it back when it closes, and gives
   * back the slot of a handshake that fails after admission (call once io exists, before
   * anything replaces `conn.request`). Without a limit it does nothing: no per-connection work.
   */
  track(io: Server): void;
}

export function createAdmission(options: AdmissionOptions): Admission {
  const anyOrigin = options.origins.length === 0 || options.origins.includes("*");
  const origins = new Set(options.origins);
  const addressOf = (peer: string | undefined, headers: IncomingMessage["headers"]) =>
    clientAddress(peer, headers["x-forwarded-for"], options.proxies);

  const refuse = (reason: AdmissionRefusal, address: string, extra: object = {}) => {
    options.onRefused?.(reason);
    options.logger.debug({ address, reason, ...extra }, "connection refused");
    return MESSAGES[reason];
  };

  const max = options.maxConnectionsPerIp;
  const slots = options.slots ?? localSlots(max);
  // Logged when the slots stop answering and when they answer again, not once per handshake.
  let slotsFailing = false;

  /**
   * Handshakes admitted with a slot that no connection holds yet. The slot goes to the connection
   * Engine.IO opens for the request (`track`), or back when the request's socket closes first:
   * a handshake can fail after admission (a WebSocket upgrade ws refuses, a client gone).
   */
  const held = new WeakMap<IncomingMessage, { address: string; giveBack: () => void }>();
  const hold = (req: IncomingMessage, address: string) => {
    const giveBack = () => {
      if (held.get(req)?.giveBack !== giveBack) return;
      held.delete(req);
      slots.release(address);
    };
    held.set(req, { address, giveBack });
    // `on`, not `once`: slim-requests.ts removes the one `once` listener engine.io adds to an
    // upgrading socket, and finds it by being the only one. Removed when a connection takes it.
    req.socket.on("close", giveBack);
  };

  /** The verdict on everything but the slots: a refusal message, or the address. */
  const verdict = (req: IncomingMessage): { err: string } | { address: string } => {
    const address = addressOf(req.socket.remoteAddress, req.headers);
    if (options.isDraining()) return { err: MESSAGES.draining };
    const origin = req.headers.origin;
    if (!anyOrigin && origin !== undefined && !origins.has(origin)) {
      return { err: refuse("origin_not_allowed", address, { origin: origin.slice(0, 200) }) };
    }
    return { address };
  };

  const onReserved = (
    req: IncomingMessage,
    address: string,
    granted: boolean,
    callback: (err: string | null, ok: boolean) => void,
  ) => {
    if (!granted) return callback(refuse("too_many_connections", address), false);
    if (req.socket.destroyed) {
      // The client left while its slot was asked for: nothing will hold it.
      slots.release(address);
      return callback(MESSAGES.admission_unavailable, false);
    }
    hold(req, address);
    callback(null, true);
  };

  const decide: AllowRequest = (req, callback) => {
    const result = verdict(req);
    if ("err" in result) return callback(result.err, false);
    if (max === 0) return callback(null, true);
    const { address } = result;
    let reserved: boolean | Promise<boolean>;
    try {
      reserved = slots.reserve(address);
    } catch (err) {
      reserved = Promise.reject(err);
    }
    if (typeof reserved === "boolean") return onReserved(req, address, reserved, callback);
    reserved.then(
      (granted) => {
        if (slotsFailing) {
          slotsFailing = false;
          options.logger.info({}, "connection slots answering again");
        }
        onReserved(req, address, granted, callback);
      },
      (err: unknown) => {
        // Fail closed: without the count of the other processes, the limit cannot be known.
        if (!slotsFailing) {
          slotsFailing = true;
          options.logger.error(
            { err },
            "connection slots unavailable: refusing handshakes while MAX_CONNECTIONS_PER_IP cannot be checked (not logged again until they answer)",
          );
        }
        callback(refuse("admission_unavailable", address), false);
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
      // A handshake admitted that Engine.IO then refuses itself (protocol, transport) gets its
      // slot back at once rather than when its socket closes.
      io.engine.on("connection_error", (error: { req?: IncomingMessage }) => {
        if (error.req) held.get(error.req)?.giveBack();
      });
      io.engine.on("connection", (conn: EngineConnection) => {
        const slot = held.get(conn.request);
        if (!slot) return; // admitted without a slot (not through allowRequest)
        held.delete(conn.request);
        conn.request.socket.off("close", slot.giveBack);
        const { address } = slot;
        let released = false;
        const release = () => {
          if (released) return;
          released = true;
          slots.release(address);
        };
        conn.once("close", release);
        // A server-side close (HANDSHAKE_TIMEOUT_MS, a refusal) of a long-polling connection ends
        // only at the client's next request or Engine.IO's timeouts: the slot is free at once.
        const close = conn.close;
        conn.close = function (this: EngineConnection, ...args: unknown[]) {
          release();
          return close.apply(this, args);
        };
      });
    },
  };
}

/** The part of an Engine.IO socket this module uses. */
interface EngineConnection {
  request: IncomingMessage;
  once(event: "close", listener: () => void): void;
  close(...args: unknown[]): unknown;
}
