import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { startAmqpCluster } from "../support/amqp-helpers.js";
import { waitFor } from "../support/wait.js";

/** The socket under an amqplib connection (amqplib 2.x keeps it as `connection.stream`). */
function brokerSocket(connection: unknown): Socket {
  return (connection as { connection: { stream: Socket } }).connection.stream;
}

describe("amqp adapter: when a broadcast leaves for the broker", () => {
  it("a broadcast is on the broker's socket when emit returns, before the local delivery and the rest of the turn", async () => {
    const cluster = await startAmqpCluster({ nodes: 1, adapter: { roomRouting: true } });
    await waitFor(() => cluster.adapter(0).connected, {
      timeoutMs: 5_000,
      message: "transport ready",
    });
    const socket = brokerSocket(cluster.connections[0]);
    const before = socket.bytesWritten;
    cluster.servers[0]?.to("R").emit("ev", "x".repeat(50));
    expect(socket.bytesWritten - before).toBeGreaterThan(50);
  });
});
