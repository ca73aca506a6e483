import type { Server } from "socket.io";
import type { Logger } from "./logger.js";

/**
 * Bounds what one Engine.IO connection can make the gateway build. Socket.IO creates a socket
 * object for every CONNECT packet, and one long-polling POST can carry thousands of them; the
 * handshake refuses a second socket per namespace while the first is being admitted (after that,
 * Socket.IO itself closes a connection that sends CONNECT for a namespace it is in), and this
 * closes a connection that keeps
 * sending CONNECT packets past a small budget (a burst of two per namespace, then one a second),
 * before the rest of its payload is even decoded.
 */
export function guardConnectPackets(
  io: Server,
  options: { namespaces: number; logger: Logger; onClosed?: () => void },
): void {
  const burst = 2 * options.namespaces + 2;
  // The budget as one number per connection (a generic cell rate algorithm): the time at which
  // the connection's budget is full again, in ms of performance.now(). Allowed while that time
  // is at most `burst - 1` intervals ahead; each CONNECT moves it one interval on.
  const tolerance = (burst - 1) * INTERVAL_MS;
  const fullAt = new WeakMap<EngineConnection, number>();

  // One listener for every connection, called with the connection as `this`.
  function onPacket(this: EngineConnection, packet: { type: string; data?: unknown }) {
    // A Socket.IO CONNECT is an Engine.IO message whose text starts with "0".
    if (packet.type !== "message" || typeof packet.data !== "string") return;
    if (!packet.data.startsWith("0")) return;
    // Whole milliseconds: a small integer is stored in the map as it is, a fraction is boxed.
    const now = Math.round(performance.now());
    const from = Math.max(fullAt.get(this) ?? now, now);
    if (from - now <= tolerance) {
      fullAt.set(this, from + INTERVAL_MS);
      return;
    }
    options.logger.warn(
      { address: this.remoteAddress, transport: this.transport.name },
      "connection closed: too many CONNECT packets",
    );
    options.onClosed?.();
    // Packets after this one in the same payload are dropped by Engine.IO (not open any more).
    this.close();
  }
  io.engine.on("connection", (conn: EngineConnection) => conn.on("packet", onPacket));
}

/** One CONNECT a second once the burst is spent. */
const INTERVAL_MS = 1000;

/** The part of an Engine.IO socket this module uses. */
interface EngineConnection {
  remoteAddress: string;
  transport: { name: string };
  on(
    event: "packet",
    listener: (this: EngineConnection, packet: { type: string; data?: unknown }) => void,
  ): void;
  close(): void;
}
