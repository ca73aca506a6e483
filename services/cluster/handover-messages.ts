import { randomBytes } from "node:crypto";

/**
 * The IPC message that carries a connection from the primary to a worker (handover.ts), apart so
 * that the entry point can recognise it before the cluster code loads (early-connections.ts).
 */
export const CONNECTION_MESSAGE = "switchboard:connection";

export interface ConnectionMessage {
  type: typeof CONNECTION_MESSAGE;
  /** What the primary read of the connection: the request head, and whatever followed it. */
  head: Uint8Array;
}

export function isConnectionMessage(message: unknown): message is ConnectionMessage {
  const m = message as Partial<ConnectionMessage> | null;
  return m?.type === CONNECTION_MESSAGE && m.head instanceof Uint8Array;
}

/**
 * Engine.IO session ids of `switchboard cluster` carry the cluster id of the worker that holds the
 * session (`<id in base 36>_<random>`, 20 characters of base64url, as engine.io's own): the primary
 * routes a session's requests by reading the id, so the request that follows a handshake cannot
 * outrun a message telling the primary where the session lives.
 */
export function sessionIdFor(workerId: number): string {
  const prefix = `${workerId.toString(36)}_`;
  return (
    prefix +
    randomBytes(15)
      .toString("base64url")
      .slice(0, 20 - prefix.length)
  );
}

/** The worker id a session id of `sessionIdFor` names; undefined for any other id. */
export function workerIdOf(sid: string): number | undefined {
  const match = /^([0-9a-z]{1,6})_/.exec(sid);
  return match?.[1] === undefined ? undefined : Number.parseInt(match[1], 36);
}
