import { connect, type Socket as NetSocket } from "node:net";
import type { Socket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectClient, whoami } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";

/**
 * `switchboard cluster` enforces the edge settings for its whole port, as one gateway does: the
 * primary times out clients that send nothing, and MAX_CONNECTIONS_PER_IP counts an address's
 * connections on every worker together.
 */
describe("the edge of switchboard cluster (2 workers)", () => {
  let cluster: GatewayProcess;

  beforeAll(async () => {
    cluster = await startGateway({
      mode: "cluster",
      env: {
        WORKERS: "2",
        LOG_LEVEL: "info",
        MAX_CONNECTIONS_PER_IP: "3",
        TRUSTED_PROXIES: "127.0.0.1",
        HTTP_HEADERS_TIMEOUT_MS: "1000",
        HTTP_REQUEST_TIMEOUT_MS: "2000",
      },
    });
    // Both workers take connections (a loading worker gets none while another is up).
    await waitFor(() => cluster.output().split("worker ready").length - 1 >= 2, {
      timeoutMs: 60_000,
      message: "both workers ready",
    });
  });
  afterAll(() => cluster?.stop());
  afterEach(() => closeAllClients());

  it("MAX_CONNECTIONS_PER_IP holds across workers, X-Forwarded-For from a trusted proxy included", async () => {
    const via = (address: string) => ({ extraHeaders: { "x-forwarded-for": address } });
    const sockets: Socket[] = [];
    for (let i = 0; i < 3; i++) sockets.push(await connectClient(cluster.url, via("203.0.113.9")));
    // The primary's least-connection balancing spread them: the limit is not per worker.
    const workers = new Set(await Promise.all(sockets.map(async (s) => (await whoami(s)).gateway)));
    expect(workers.size).toBe(2);

    const refused = await fetch(`${cluster.url}/socket.io/?EIO=4&transport=polling`, {
      headers: { "x-forwarded-for": "203.0.113.9" },
    });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toEqual({ code: 4, message: "too many connections" });
    await expect(connectClient(cluster.url, via("203.0.113.9"))).rejects.toThrow();
    // Another address behind the same proxy has its own budget.
    await connectClient(cluster.url, via("198.51.100.9"));

    // A connection that ends gives its slot back, whichever worker held it.
    sockets[0]!.disconnect();
    await waitFor(
      async () => {
        const res = await fetch(`${cluster.url}/socket.io/?EIO=4&transport=polling`, {
          headers: { "x-forwarded-for": "203.0.113.9" },
        });
        await res.text();
        return res.status === 200;
      },
      { timeoutMs: 10_000, message: "the freed slot is usable again" },
    );
  });

  it("the primary times out a client that sends nothing (HTTP_HEADERS_TIMEOUT_MS)", async () => {
    // Node's own default would keep it for 60 s or more; the bound below is far under that.
    const result = await new Promise<{ got: string }>((resolve, reject) => {
      const socket: NetSocket = connect(cluster.port, "127.0.0.1");
      let got = "";
      socket.on("data", (chunk) => {
        got += chunk.toString();
      });
      socket.once("error", reject);
      socket.once("close", () => resolve({ got }));
      setTimeout(() => socket.destroy(new Error("the primary kept a silent client")), 20_000);
    });
    expect(result.got).toMatch(/^HTTP\/1\.1 408/);
  });
});
