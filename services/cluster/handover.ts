import type { Socket } from "node:net";

/**
 * @socket.io/sticky (1.0.4) reads a connection's first chunk in the primary, then sends the
 * socket's handle to a worker, but the primary keeps reading it until the worker acknowledges the
 * handle; bytes read meanwhile are lost, so a WebSocket client's first frames can vanish and it
 * hangs on connect. Registered on the HTTP server before `setupMaster`, this stops reading right
 * after the first chunk. Requests that may have a body keep reading: sticky forwards their later
 * chunks itself.
 */
export function stopReadingOnHandover(socket: Socket): void {
  socket.once("data", (chunk: Buffer) => {
    const text = chunk.toString("latin1");
    const head = text.slice(0, text.indexOf("\r\n\r\n")).toLowerCase();
    if (head.includes("content-length:") || head.includes("transfer-encoding:")) return;
    (socket as Socket & { _handle?: { readStop?: () => void } | null })._handle?.readStop?.();
  });
}
