import type { Socket } from "socket.io";
import type { Authenticator, Identity } from "./auth.js";
import { type AckReply, fail, ok } from "./client-errors.js";
import type { Logger } from "./logger.js";
import type { Authorizer } from "./protocol.js";
import { checkClientRoom } from "./rooms.js";

/**
 * A connected client's identity over time: the `user:<sub>` room, the rights its token grants,
 * and its expiry. At expiry the socket is disconnected unless the client sent a fresh token with
 * `refresh` before.
 *
 * Identities live beside the socket (not in `socket.data`, which `fetchSockets` ships to other
 * gateways) and die with it. What is kept per socket is the least each mode needs: in dev mode
 * nothing (every client has the same identity), with tokens the identity and its expiry timer,
 * cleared by one disconnect listener shared by every socket.
 */

export interface Sessions {
  /** The handshake's verified identity of `socket`, kept until the socket is gone. */
  set(socket: Socket, identity: Identity): void;
  /** Arms the expiry timer of a connected socket; cleared when it disconnects. */
  start(socket: Socket): void;
  /**
   * `refresh(token)`: a fresh token replaces the current one. It must be valid and name the same
   * `sub`; its rights replace the old ones, and rooms they no longer allow are left.
   */
  refresh(socket: Socket, token: unknown): Promise<AckReply>;
  /** Rights from the socket's identity; a socket without one may do nothing. */
  readonly authorizer: Authorizer;
}

/** setTimeout's upper bound; longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const userRoom = (sub: string) => `user:${sub}`;

export function createSessions(authenticator: Authenticator, logger: Logger): Sessions {
  const identities = new WeakMap<Socket, Identity>();
  const timers = new WeakMap<Socket, NodeJS.Timeout>();
  // Dev mode: the one identity every client gets, kept once instead of once per socket.
  let shared: Identity | undefined;
  const identityOf = (socket: Socket) => identities.get(socket) ?? shared;

  // Called with the socket as `this`: one function for every socket.
  function clearExpiry(this: Socket) {
    clearTimeout(timers.get(this));
    timers.delete(this);
  }

  const expire = (socket: Socket) => {
    timers.delete(socket);
    if (!socket.connected) return;
    logger.info(
      { socket: socket.id, sub: identityOf(socket)?.sub, reason: "token expired" },
      "client disconnected: token expired",
    );
    // This namespace only: the connection's other namespaces have tokens of their own.
    socket.disconnect();
  };

  const arm = (socket: Socket): void => {
    const previous = timers.get(socket);
    clearTimeout(previous);
    const expiresAt = identities.get(socket)?.expiresAt;
    if (expiresAt === undefined) {
      timers.delete(socket);
      return;
    }
    const left = expiresAt - Date.now();
    const timer =
      left > MAX_TIMER_MS
        ? setTimeout(arm, MAX_TIMER_MS, socket)
        : setTimeout(expire, Math.max(0, left), socket);
    timer.unref();
    timers.set(socket, timer);
    if (previous === undefined) socket.on("disconnect", clearExpiry);
  };

  return {
    set(socket, identity) {
      if (authenticator.mode === "dev") shared = identity;
      else identities.set(socket, identity);
    },
    start(socket) {
      if (identities.has(socket)) arm(socket);
    },
    async refresh(socket, token) {
      const current = identities.get(socket);
      if (authenticator.mode === "dev" || !current) return ok();
      const result = await authenticator.authenticate(token);
      if (!result.ok) {
        logger.info(
          { socket: socket.id, sub: current.sub, code: result.code, detail: result.detail },
          "token refresh refused",
        );
        return fail(result.code === "token_expired" ? "token_expired" : "invalid_token");
      }
      if (result.identity.sub !== current.sub) {
        logger.info(
          { socket: socket.id, sub: current.sub, newSub: result.identity.sub ?? null },
          "token refresh refused: another sub",
        );
        return fail("forbidden");
      }
      identities.set(socket, result.identity);
      // Rooms a client can name (not its user: room or socket id) that the new token does not allow.
      for (const room of socket.rooms) {
        if (checkClientRoom(room) === "ok" && !result.identity.rights.join.matches(room)) {
          await socket.leave(room);
        }
      }
      if (socket.connected) arm(socket);
      return ok();
    },
    authorizer: {
      canJoin: (socket, room) => identityOf(socket)?.rights.join.matches(room) ?? false,
      canPublish: (socket, room) => identityOf(socket)?.rights.publish.matches(room) ?? false,
    },
  };
}
