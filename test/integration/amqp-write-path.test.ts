import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { startAmqpCluster } from "../support/amqp-helpers.js";
import { waitFor } from "../support/wait.js";

/** The socket under an amqplib connection (amqplib 2.x keeps it as `connection.stream`). */
function brokerSocket(connection: unknown): Socket {
  return (connection as { connection: { stream: Socket } }).connection.stream;
}

describe("amqp adapter: when a broadcast leaves for the broker", () => {
  it("a broadcast emitted from a tick is on the broker's socket before that tick's promise jobs, where the local delivery runs", async () => {
    const cluster = await startAmqpCluster({ nodes: 1, adapter: { roomRouting: true } });
    await waitFor(() => cluster.adapter(0).connected, {
      timeoutMs: 5_000,
      message: "transport ready",
    });
    const socket = brokerSocket(cluster.connections[0]);
    const written = await new Promise<number>((resolve) =>
      // Socket.IO runs a client's event handler from process.nextTick, as here.
      process.nextTick(() => {
        const before = socket.bytesWritten;
        cluster.servers[0]?.to("R").emit("ev", "x".repeat(50));
        void Promise.resolve().then(() => resolve(socket.bytesWritten - before));
      }),
    );
    expect(written).toBeGreaterThan(50);
  });
});
