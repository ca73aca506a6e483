/**
 * The bound on what a gateway holds for one WebSocket client that does not read
 * (MAX_CLIENT_BUFFER_BYTES). A client that stops reading its socket while its rooms keep
 * receiving would otherwise make the gateway buffer every message for it, without limit: a few
 * clients could take the process's memory. Before each packet is written to a WebSocket client,
 * the bytes already waiting for it are counted: the WebSocket's unsent bytes (`ws`'s public
 * `bufferedAmount`: the socket's and the sender's queues) and engine.io's write buffer (packets
 * held while the transport is busy). Past the limit the connection is closed at once (without
 * the closing handshake a client that does not read would never complete) and the packet
 * dropped.
 *
 * Long-polling clients are not counted: their packets wait in the write buffer between two
 * polls by design, so a burst to a room would cut healthy polling members off. One that stops
 * polling stops answering pings too, and engine.io closes it after pingInterval + pingTimeout.
 */

/** engine.io's Socket, as far as this reads it (engine.io 6: build/socket.js). */
export interface BufferedConn {
  id: string;
  readyState: string;
  writeBuffer: Array<{ data?: unknown }>;
  transport: { name?: unknown; socket?: { bufferedAmount?: unknown; terminate?: unknown } } | null;
  close(discard?: boolean): void;
}

/** What was counted of one write buffer (engine.io replaces the array when it flushes). */
interface Counted {
  entries: number;
  bytes: number;
}
const counted = new WeakMap<unknown[], Counted>();

const sizeOf = (data: unknown): number =>
  typeof data === "string"
    ? data.length
    : ArrayBuffer.isView(data)
      ? data.byteLength
      : data instanceof ArrayBuffer
        ? data.byteLength
        : 0;

/** Bytes waiting to be sent to this client: in the WebSocket, and in engine.io's write buffer. */
export function pendingBytes(conn: BufferedConn): number {
  let bytes = 0;
  const transport = conn.transport;
  if (transport?.name === "websocket") {
    const buffered = transport.socket?.bufferedAmount;
    if (typeof buffered === "number") bytes += buffered;
  }
  const queue = conn.writeBuffer;
  if (queue.length > 0) {
    // Counted once per entry: a buffer that only grows is walked once in all.
    let seen = counted.get(queue);
    if (seen === undefined) {
      seen = { entries: 0, bytes: 0 };
      counted.set(queue, seen);
    }
    for (; seen.entries < queue.length; seen.entries++)
      seen.bytes += sizeOf(queue[seen.entries]?.data);
    bytes += seen.bytes;
  }
  return bytes;
}

/**
 * True when the client has more than `limit` bytes waiting: the connection is then closed (the
 * caller drops the packet) and `onDrop` told once.
 */
export function dropIfSlow(
  conn: BufferedConn,
  limit: number,
  onDrop: (pending: number, connection: string) => void,
): boolean {
  if (conn.readyState !== "open" || conn.transport?.name !== "websocket") return false;
  const pending = pendingBytes(conn);
  if (pending <= limit) return false;
  onDrop(pending, conn.id);
  const socket = conn.transport?.socket;
  if (typeof socket?.terminate === "function") {
    // engine.io sees the transport close and closes the connection (reason "transport close").
    (socket.terminate as () => void).call(socket);
  } else {
    conn.close(true);
  }
  return true;
}
