import { request as httpRequest } from "node:http";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { closeAllClients, connectClient } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { rawWebSocket } from "./security-helpers.js";

/**
 * A refused Engine.IO handshake gets the same answer on both transports: HTTP 403 with
 * `{code: 4, message}`, on the WebSocket upgrade as on long-polling.
 */

const ORIGIN = "https://app.example";

/** Sends a WebSocket upgrade request and resolves with the HTTP answer, or 101. */
function upgrade(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; contentType?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${url}/socket.io/?EIO=4&transport=websocket`, {
      headers: {
        connection: "Upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        ...headers,
      },
      timeout: 10_000,
    });
    req.once("upgrade", (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, body: "" });
    });
    req.once("response", (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.once("end", () =>
        resolve({ status: res.statusCode ?? 0, contentType: res.headers["content-type"], body }),
      );
    });
    req.once("timeout", () => req.destroy(new Error("no answer to the upgrade")));
    req.once("error", reject);
    req.end();
  });
}

describe("a refused WebSocket upgrade is answered 403, as long-polling is", () => {
  let gateway: GatewayProcess;

  beforeAll(async () => {
    gateway = await startGateway({
      env: { CORS_ORIGINS: ORIGIN, MAX_CONNECTIONS_PER_IP: "1", TRUSTED_PROXIES: "127.0.0.1" },
    });
  });
  afterAll(() => gateway?.stop());
  afterEach(() => closeAllClients());

  it("for a disallowed Origin", async () => {
    const refused = await upgrade(gateway.url, {
      origin: "https://evil.example",
      "x-forwarded-for": "203.0.113.20",
    });
    expect(refused).toEqual({
      status: 403,
      contentType: "application/json",
      body: JSON.stringify({ code: 4, message: "origin not allowed" }),
    });
    // The allowed origin upgrades.
    const allowed = await upgrade(gateway.url, {
      origin: ORIGIN,
      "x-forwarded-for": "203.0.113.21",
    });
    expect(allowed.status).toBe(101);
  });

  it("for an address over MAX_CONNECTIONS_PER_IP", async () => {
    const via = { "x-forwarded-for": "203.0.113.22" };
    const held = await rawWebSocket(gateway.url, via);
    try {
      expect(await upgrade(gateway.url, via)).toEqual({
        status: 403,
        contentType: "application/json",
        body: JSON.stringify({ code: 4, message: "too many connections" }),
      });
      const polling = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`, {
        headers: via,
      });
      expect(polling.status).toBe(403);
      expect(await polling.json()).toEqual({ code: 4, message: "too many connections" });
    } finally {
      held.socket.close();
    }
    // A session opened on long-polling upgrades to WebSocket as before (its upgrade is no handshake).
    const client = await connectClient(gateway.url, {
      transports: ["polling", "websocket"],
      extraHeaders: { "x-forwarded-for": "203.0.113.23" },
    });
    await new Promise<void>((resolve) => {
      if (client.io.engine.transport.name === "websocket") return resolve();
      client.io.engine.once("upgrade", () => resolve());
    });
    expect(client.io.engine.transport.name).toBe("websocket");
  });
});
