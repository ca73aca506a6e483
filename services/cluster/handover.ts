import cluster from "node:cluster";
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { setupPrimary } from "@socket.io/cluster-adapter";
import { setupMaster } from "@socket.io/sticky";

/**
 * The primary's side of `switchboard cluster`: cluster-adapter relaying, and an HTTP server (not
 * yet listening) whose connections @socket.io/sticky hands to workers. Call before forking.
 */
export function setupStickyPrimary(limits: {
  headersTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
}): Server {
  // "advanced" (structured clone) keeps Buffers binary between workers, as the cluster adapter
  // requires; JSON would turn them into {type: "Buffer", data: [...]}.
  cluster.setupPrimary({ serialization: "advanced" });
  setupPrimary();
  // Checked every second, as the gateway's own server does (Node's default is every 30 s).
  const httpServer = createServer({ ...limits, connectionsCheckingInterval: 1000 });
  // Before sticky's own listener, so that it runs first.
  httpServer.on("connection", stopReadingOnHandover);
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" });
  return httpServer;
}

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
