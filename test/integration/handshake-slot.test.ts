import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";
import { rawPolling } from "./security-helpers.js";

/**
 * A long-polling Engine.IO session that never joins a namespace is closed at
 * HANDSHAKE_TIMEOUT_MS, and its MAX_CONNECTIONS_PER_IP slot is free from then on, not only once
 * Engine.IO gives up on the silent client (its close timeout or ping timeout, 25 s and more with
 * the defaults this gateway keeps).
 */
describe("HANDSHAKE_TIMEOUT_MS frees the per-IP slot of a client that never joins", () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGateway({
      env: { MAX_CONNECTIONS_PER_IP: "1", HANDSHAKE_TIMEOUT_MS: "1000" },
    });
  });
  afterAll(() => gateway?.stop());

  const handshake = () => fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`);

  it("a new handshake succeeds soon after the silent one is closed", async () => {
    // Opens a session, sends no Socket.IO CONNECT and no further request.
    await rawPolling(gateway.url);
    const held = await handshake();
    expect(held.status).toBe(403);
    expect(await held.json()).toEqual({ code: 4, message: "too many connections" });
    await waitFor(
      async () => {
        const res = await handshake();
        await res.text();
        return res.status === 200;
      },
      {
        timeoutMs: 10_000,
        intervalMs: 200,
        message: "a handshake after the timeout freed the slot",
      },
    );
  });
});
