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
