import { randomBytes } from "node:crypto";
import type { Socket as NetSocket } from "node:net";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients, collect, connectClient, request } from "../support/clients.js";
import { startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";
import { metric, rawWebSocket, rssBytes, scrape } from "./security-helpers.js";

const KEY = "slow-consumer-test-key-0123456789abcdef";
const LIMIT = 256 * 1024;

afterEach(() => closeAllClients());

/**
 * A client that joins a busy room and stops reading must not make the gateway hold everything
 * published meanwhile (SECURITY.md: a hostile client only ever affects itself).
 */
describe("MAX_CLIENT_BUFFER_BYTES: a WebSocket client that does not read", () => {
  it("is disconnected once more than the limit waits for it; readers in the same room get everything", async () => {
    const gateway = await startGateway({
      env: { MAX_CLIENT_BUFFER_BYTES: String(LIMIT), PUBLISH_API_KEYS: KEY, LOG_LEVEL: "info" },
    });
    onTestFinished(() => gateway.stop());
    const room = `slow:${randomBytes(4).toString("hex")}`;

    // The one that stops reading: an Engine.IO WebSocket by hand, joined, then its TCP socket
    // paused (the kernel's buffers fill, then the gateway's).
    const slow = await rawWebSocket(gateway.url);
    slow.send("40");
    await waitFor(() => slow.received.some((f) => f.startsWith("40")), { message: "CONNECT" });
    slow.send(`420["join","${room}"]`);
    await waitFor(() => slow.received.includes('430[{"ok":true}]'), { message: "the join ack" });
    (slow.socket as unknown as { _socket: NetSocket })._socket.pause();
    onTestFinished(() => slow.socket.terminate());

    const reader = await connectClient(gateway.url);
    expect(await request(reader, "join", room)).toEqual({ ok: true });
    const got = collect<string>(reader, "big");

    // 40 MB in 800 publishes of 50 KB: far more than loopback's socket buffers hold.
    const data = "x".repeat(50_000);
    const commands = 800;
    const rssBefore = await rssBytes(gateway);
    for (let i = 0; i < commands; i++) {
      const res = await fetch(`${gateway.url}/v1/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ v: 1, rooms: [room], event: "big", data }),
      });
      expect(res.status).toBe(202);
    }

    await waitFor(
      async () =>
        metric(await scrape(gateway), "switchboard_gateway_slow_consumer_disconnects_total") === 1,
      { timeoutMs: 20_000, message: "the slow client disconnected" },
    );
    expect(gateway.output()).toContain("more than MAX_CLIENT_BUFFER_BYTES waiting to be sent");
    await waitFor(() => got.length === commands, { timeoutMs: 30_000, message: "every publish" });
    expect(reader.connected).toBe(true);
    // What was published passed through; what was held for the slow client was let go.
    expect(await rssBytes(gateway)).toBeLessThan(rssBefore + 30 * 1024 * 1024);
  });

  it("leaves long-polling members alone through a burst larger than the limit (their packets wait for the next poll)", async () => {
    const gateway = await startGateway({
      env: { MAX_CLIENT_BUFFER_BYTES: String(LIMIT), PUBLISH_API_KEYS: KEY },
    });
    onTestFinished(() => gateway.stop());
    const room = `burst:${randomBytes(4).toString("hex")}`;
    const polling = await connectClient(gateway.url, { transports: ["polling"] });
    expect(await request(polling, "join", room)).toEqual({ ok: true });
    const got = collect<string>(polling, "big");
    // 30 × 50 KB at once: 1.5 MB waiting between two polls, six times the limit.
    const data = "y".repeat(50_000);
    const statuses = await Promise.all(
      Array.from({ length: 30 }, () =>
        fetch(`${gateway.url}/v1/publish`, {
          method: "POST",
          headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
          body: JSON.stringify({ v: 1, rooms: [room], event: "big", data }),
        }).then((res) => res.status),
      ),
    );
    expect(statuses).toEqual(Array.from({ length: 30 }, () => 202));
    await waitFor(() => got.length === 30, { timeoutMs: 20_000, message: "the whole burst" });
    expect(polling.connected).toBe(true);
    expect(
      metric(await scrape(gateway), "switchboard_gateway_slow_consumer_disconnects_total"),
    ).toBe(0);
  });

  it("refuses a limit below 64 KB at start, naming the variable", async () => {
    await expect(startGateway({ env: { MAX_CLIENT_BUFFER_BYTES: "1000" } })).rejects.toThrow(
      /MAX_CLIENT_BUFFER_BYTES: must be 0 \(no bound\) or at least 65536/,
    );
  });
});
