import type { Socket } from "socket.io-client";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients, connectClient } from "../support/clients.js";
import { startGateway } from "../support/gateway-process.js";
import { nextEvent, waitFor } from "../support/wait.js";

afterEach(() => closeAllClients());

describe("graceful shutdown", () => {
  it.each(["gateway", "cluster"] as const)(
    "SIGTERM on a %s with clients: /readyz says 503 first, clients are let go to reconnect, exit 0 within the bound",
    async (mode) => {
      const gw = await startGateway({
        mode,
        env: {
          WORKERS: "2",
          SHUTDOWN_DRAIN_MS: "1500",
          SHUTDOWN_TIMEOUT_MS: "8000",
          LOG_LEVEL: "info",
        },
      });
      onTestFinished(() => gw.stop());
      const clients = await Promise.all([1, 2, 3].map(() => connectClient(gw.url)));
      const reasons = clients.map((c) =>
        nextEvent<[string]>(c as unknown as Socket, "disconnect", 15_000),
      );

      const startedAt = Date.now();
      gw.signal("SIGTERM");
      await waitFor(
        async () =>
          (await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(500) })).status === 503,
        { timeoutMs: 5000, intervalMs: 25, message: "/readyz 503 while draining" },
      );
      // Still draining: new clients are refused so that they go to another gateway.
      await expect(connectClient(gw.url)).rejects.toThrow();

      const { code } = await gw.exited;
      expect(code).toBe(0);
      expect(Date.now() - startedAt).toBeLessThan(8000 + 2000);
      // "transport close" (not "io server disconnect") is what makes Socket.IO clients reconnect.
      for (const [reason] of await Promise.all(reasons)) expect(reason).toBe("transport close");
      expect(gw.output()).toContain("shutdown complete");
    },
  );

  it("exits 1 when the shutdown bound is reached first", async () => {
    const gw = await startGateway({
      env: { SHUTDOWN_DRAIN_MS: "5000", SHUTDOWN_TIMEOUT_MS: "500", LOG_LEVEL: "info" },
    });
    onTestFinished(() => gw.stop());
    gw.signal("SIGTERM");
    expect((await gw.exited).code).toBe(1);
    expect(gw.output()).toContain("shutdown timed out");
  });
});
