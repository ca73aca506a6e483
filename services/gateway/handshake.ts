import type { Socket } from "socket.io";
import { AUTH_FAILURES, type Authenticator, type AuthFailureCode } from "./auth.js";
import type { Logger } from "./logger.js";
import { checkClientRoom } from "./rooms.js";
import { type Sessions, userRoom } from "./session.js";

/**
 * The namespace middleware every Socket.IO connection passes before `connect`:
 * 0. only namespaces of NAMESPACES (a namespace costs adapter state, bindings and heartbeats on
 *    every gateway, so neither clients nor server-side code create others for clients);
 * 1. one socket per namespace per Engine.IO connection (a second CONNECT packet for a namespace
 *    the connection already has, or is being admitted to, is refused);
 * 2. the token is authenticated, and a client with a `sub` is put in `user:<sub>`.
 *
 * A refused client gets `connect_error` with a short `message` and `data.code`, never details.
 */

export type HandshakeRefusal =
  | AuthFailureCode
  | "unknown_namespace"
  | "duplicate_namespace"
  | "internal";

const MESSAGES: Record<HandshakeRefusal, string> = {
  ...AUTH_FAILURES,
  unknown_namespace: "unknown namespace",
  duplicate_namespace: "already connected to this namespace",
  internal: "internal error",
};

export interface HandshakeOptions {
  authenticator: Authenticator;
  /** NAMESPACES: a client connecting to any other namespace is refused. */
  namespaces: ReadonlySet<string>;
  logger: Logger;
  /** Where the verified identity of an admitted socket is kept. */
  sessions: Sessions;
  /** Called once per refused handshake, for metrics. */
  onRefused?: (code: HandshakeRefusal) => void;
}

type Middleware = (socket: Socket, next: (err?: Error) => void) => void;

/**
 * The token: `auth.token` of the CONNECT packet, else an `Authorization: Bearer` header of the
 * handshake request. Never the query string, which ends up in access logs and proxies.
 */
export function tokenFromHandshake(handshake: Socket["handshake"]): unknown {
  const auth: unknown = handshake.auth;
  if (typeof auth === "object" && auth !== null && "token" in auth) {
    const token = (auth as { token?: unknown }).token;
    if (token !== undefined) return token;
  }
  const header = handshake.headers.authorization;
  if (typeof header !== "string") return undefined;
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header);
  // Another scheme is not a missing token: it is a token we cannot use.
  return bearer ? bearer[1] : header;
}

export function createHandshake(options: HandshakeOptions): Middleware {
  const { authenticator, logger, sessions } = options;
  // Namespaces each Engine.IO connection is being admitted to. An entry lives only while its
  // admission is in flight: once a socket is connected, Socket.IO itself closes a connection
  // that sends CONNECT for that namespace again (its Client checks its own `nsps`), so nothing
  // is kept per connected client.
  const admitting = new WeakMap<Socket["client"], Set<string>>();

  const refusal = (socket: Socket, code: HandshakeRefusal, detail: string): Error => {
    options.onRefused?.(code);
    logger.info(
      { nsp: socket.nsp.name, address: socket.handshake.address, code, detail },
      "client refused",
    );
    const err = new Error(MESSAGES[code]) as Error & { data?: unknown };
    err.data = { code };
    return err;
  };

  const admit = async (socket: Socket): Promise<Error | undefined> => {
    const result = await authenticator.authenticate(tokenFromHandshake(socket.handshake));
    if (!result.ok) return refusal(socket, result.code, result.detail);
    const { identity } = result;
    sessions.set(socket, identity);
    const ownRoom = identity.sub === undefined ? undefined : userRoom(identity.sub);
    if (socket.recovered) {
      // Rooms restored from the session are kept only as far as this token allows them.
      for (const room of socket.rooms) {
        if (room === socket.id || room === ownRoom) continue;
        if (checkClientRoom(room) !== "ok" || !identity.rights.join.matches(room)) {
          await socket.leave(room);
        }
      }
    }
    // Joined before `connect` reaches the client: a publish to user:<sub> after that reaches it.
    if (ownRoom !== undefined) await socket.join(ownRoom);
    return undefined;
  };

  const release = (client: Socket["client"], nsp: string) => {
    const names = admitting.get(client);
    names?.delete(nsp);
    if (names?.size === 0) admitting.delete(client);
  };

  return (socket, next) => {
    const nsp = socket.nsp.name;
    if (!options.namespaces.has(nsp)) {
      return next(refusal(socket, "unknown_namespace", "not in NAMESPACES"));
    }
    const client = socket.client;
    let names = admitting.get(client);
    if (names?.has(nsp) || connectedNamespaces(client)?.has(nsp)) {
      return next(refusal(socket, "duplicate_namespace", "second CONNECT on one connection"));
    }
    if (!names) {
      names = new Set();
      admitting.set(client, names);
    }
    names.add(nsp);
    const tracked = connectedNamespaces(client) !== undefined;
    admit(socket).then(
      (refused) => {
        next(refused);
        if (refused) return release(client, nsp);
        if (tracked) {
          // Socket.IO adds the socket to its client's namespaces on the next tick after `next()`:
          // the claim ends after that (ticks run in order), so no CONNECT slips in between.
          process.nextTick(release, client, nsp);
        } else {
          // A Socket.IO whose Client keeps no `nsps` map: the claim lasts as long as the socket.
          socket.once("disconnect", () => release(client, nsp));
        }
      },
      (err: unknown) => {
        release(client, nsp);
        logger.error({ err, nsp }, "handshake failed");
        next(refusal(socket, "internal", "handshake threw"));
      },
    );
  };
}

/**
 * The namespaces a Socket.IO client has a connected socket in: Socket.IO 4's (private) `nsps`
 * map, read only if it is there; undefined otherwise.
 */
function connectedNamespaces(client: Socket["client"]): ReadonlyMap<string, unknown> | undefined {
  const nsps = (client as unknown as { nsps?: unknown }).nsps;
  return nsps instanceof Map ? nsps : undefined;
}
