import type { Server } from "socket.io";
import type { Logger } from "./logger.js";
import { TokenBucket } from "./rate-limit.js";

/**
 * Bounds what one Engine.IO connection can make the gateway build. Socket.IO creates a socket
 * object for every CONNECT packet, and one long-polling POST can carry thousands of them; the
 * handshake refuses a second socket per namespace, and this closes a connection that keeps
 * sending CONNECT packets past a small budget (a burst of two per namespace, then one a second),
 * before the rest of its payload is even decoded.
 */
export function guardConnectPackets(
  io: Server,
  options: { namespaces: number; logger: Logger; onClosed?: () => void },
): void {
  const burst = 2 * options.namespaces + 2;
  io.engine.on("connection", (conn: EngineConnection) => {
    const budget = new TokenBucket(1, burst);
    conn.on("packet", (packet: { type: string; data?: unknown }) => {
      // A Socket.IO CONNECT is an Engine.IO message whose text starts with "0".
      if (packet.type !== "message" || typeof packet.data !== "string") return;
      if (!packet.data.startsWith("0") || budget.take()) return;
      options.logger.warn(
        { address: conn.remoteAddress, transport: conn.transport.name },
        "connection closed: too many CONNECT packets",
      );
      options.onClosed?.();
      // Packets after this one in the same payload are dropped by Engine.IO (not open any more).
      conn.close();
    });
  });
}

/** The part of an Engine.IO socket this module uses. */
interface EngineConnection {
  remoteAddress: string;
  transport: { name: string };
  on(event: "packet", listener: (packet: { type: string; data?: unknown }) => void): void;
  close(): void;
}
