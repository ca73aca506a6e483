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
 * Sessions live beside the socket (not in `socket.data`, which `fetchSockets` ships to other
 * gateways) and die with it.
 */

interface Session {
  identity: Identity;
  timer: NodeJS.Timeout | undefined;
}

const sessions = new WeakMap<Socket, Session>();

/** setTimeout's upper bound; longer expiries re-arm. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export const userRoom = (sub: string) => `user:${sub}`;

/** Where the handshake keeps the verified identity until the socket is connected. */
export function setIdentity(socket: Socket, identity: Identity): void {
  sessions.set(socket, { identity, timer: undefined });
}

export function identityOf(socket: Socket): Identity | undefined {
  return sessions.get(socket)?.identity;
}

/** Arms the expiry timer of a connected socket; cleared when it disconnects. */
export function startSession(socket: Socket, logger: Logger): void {
  const session = sessions.get(socket);
  if (!session) return;
  arm(socket, session, logger);
  socket.once("disconnect", () => {
    clearTimeout(session.timer);
    sessions.delete(socket);
  });
}

function arm(socket: Socket, session: Session, logger: Logger): void {
  clearTimeout(session.timer);
  session.timer = undefined;
  const { expiresAt } = session.identity;
  if (expiresAt === undefined) return;
  const left = expiresAt - Date.now();
  if (left > MAX_TIMER_MS) {
    session.timer = setTimeout(() => arm(socket, session, logger), MAX_TIMER_MS);
  } else {
    session.timer = setTimeout(
      () => {
        if (!socket.connected) return;
        logger.info(
          { socket: socket.id, sub: session.identity.sub, reason: "token expired" },
          "client disconnected: token expired",
        );
        // This namespace only: the connection's other namespaces have tokens of their own.
        socket.disconnect();
      },
      Math.max(0, left),
    );
  }
  session.timer.unref();
}

/**
 * `refresh(token)`: a fresh token replaces the current one. It must be valid and name the same
 * `sub`; its rights replace the old ones, and rooms they no longer allow are left.
 */
export async function refreshSession(
  socket: Socket,
  token: unknown,
  authenticator: Authenticator,
  logger: Logger,
): Promise<AckReply> {
  const session = sessions.get(socket);
  if (authenticator.mode === "dev" || !session) return ok();
  const result = await authenticator.authenticate(token);
  if (!result.ok) {
    logger.info(
      { socket: socket.id, sub: session.identity.sub, code: result.code, detail: result.detail },
      "token refresh refused",
    );
    return fail(result.code === "token_expired" ? "token_expired" : "invalid_token");
  }
  if (result.identity.sub !== session.identity.sub) {
    logger.info(
      { socket: socket.id, sub: session.identity.sub, newSub: result.identity.sub ?? null },
      "token refresh refused: another sub",
    );
    return fail("forbidden");
  }
  session.identity = result.identity;
  // Rooms a client can name (not its user: room or socket id) that the new token does not allow.
  for (const room of socket.rooms) {
    if (checkClientRoom(room) === "ok" && !result.identity.rights.join.matches(room)) {
      await socket.leave(room);
    }
  }
  arm(socket, session, logger);
  return ok();
}

/** Rights from the socket's identity; a socket without one may do nothing. */
export const sessionAuthorizer: Authorizer = {
  canJoin: (socket, room) => identityOf(socket)?.rights.join.matches(room) ?? false,
  canPublish: (socket, room) => identityOf(socket)?.rights.publish.matches(room) ?? false,
};
