import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect, type Socket as NetSocket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer } from "node:tls";
import { io } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl } from "../support/brokers.js";
import { closeAllClients, connectClient, request, whoami } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { freePort } from "../support/ports.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { nextEvent, waitFor } from "../support/wait.js";
import { rawPolling, rawWebSocket, startBystander } from "./security-helpers.js";

/**
 * The gateway's edge on real processes: who may open a connection (origins, per-IP limits,
 * proxies), slow HTTP clients, /metrics, TLS, and what clients learn about the gateway.
 */

const ORIGIN = "https://app.example";

describe("the edge of one gateway", () => {
  let gateway: GatewayProcess;
  let bystander: Awaited<ReturnType<typeof startBystander>>;

  beforeAll(async () => {
    gateway = await startGateway({
      env: {
        CORS_ORIGINS: ORIGIN,
        MAX_CONNECTIONS_PER_IP: "6",
        TRUSTED_PROXIES: "127.0.0.1",
        HTTP_HEADERS_TIMEOUT_MS: "1000",
        HTTP_REQUEST_TIMEOUT_MS: "2000",
        METRICS_TOKEN: "metrics-token-0123456789",
        PUBLISH_API_KEYS: "edge-key-0123456789",
      },
    });
    // Through the trusted proxy with an address of its own: the per-IP cases do not count it.
    bystander = await startBystander(gateway, undefined, { "x-forwarded-for": "192.0.2.250" });
  });
  afterAll(async () => {
    bystander?.close();
    await gateway?.stop();
  });
  afterEach(async () => {
    closeAllClients();
    await bystander.stillServed();
  });

  it("refuses a disallowed Origin on the long-polling handshake and on the WebSocket upgrade", async () => {
    const polling = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`, {
      headers: { origin: "https://evil.example" },
    });
    expect(polling.status).toBe(403);
    expect(await polling.json()).toEqual({ code: 4, message: "origin not allowed" });
    await expect(rawWebSocket(gateway.url, { origin: "https://evil.example" })).rejects.toThrow(
      /refused/,
    );
    // The allowed origin, and clients that send none (not browsers), connect on both.
    await rawPolling(gateway.url, { origin: ORIGIN });
    (await rawWebSocket(gateway.url, { origin: ORIGIN })).socket.close();
    const client = await connectClient(gateway.url, { extraHeaders: { origin: ORIGIN } });
    expect(client.connected).toBe(true);
  });

  it("limits connections per client address, X-Forwarded-For believed only from a trusted proxy", async () => {
    const via = (address: string) => ({ extraHeaders: { "x-forwarded-for": address } });
    // From the trusted proxy (127.0.0.1), each forwarded address has its own budget.
    for (let i = 0; i < 6; i++) await connectClient(gateway.url, via("203.0.113.7"));
    const refused = io(gateway.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      ...via("203.0.113.7"),
    });
    const [err] = await nextEvent<[Error]>(refused, "connect_error");
    refused.disconnect();
    expect(err.message).toMatch(/websocket error|too many connections/);
    const polling = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`, {
      headers: { "x-forwarded-for": "203.0.113.7" },
    });
    expect(await polling.json()).toEqual({ code: 4, message: "too many connections" });
    // Another address behind the same proxy is not affected.
    await connectClient(gateway.url, via("198.51.100.1"));
    // Prepending an address does not borrow its budget: the right-most untrusted hop counts.
    await connectClient(gateway.url, via("203.0.113.7, 198.51.100.2"));
    // From a peer that is not a trusted proxy the header is ignored: the peer's address counts.
    const forged = [];
    for (let i = 0; i < 6; i++) {
      forged.push(
        await rawWebSocket(gateway.url, { "x-forwarded-for": `192.0.2.${i}` }, "127.0.0.2"),
      );
    }
    await expect(
      rawWebSocket(gateway.url, { "x-forwarded-for": "192.0.2.99" }, "127.0.0.2"),
    ).rejects.toThrow(/refused/);
    for (const ws of forged) ws.socket.close();
  });

  it("closes connections of clients that send their headers or body too slowly", async () => {
    const slow = (text: string) =>
      new Promise<{ closed: true; got: string }>((resolve, reject) => {
        const socket: NetSocket = connect(gateway.port, "127.0.0.1");
        let got = "";
        socket.on("data", (chunk) => {
          got += chunk.toString();
        });
        socket.once("error", reject);
        socket.once("close", () => resolve({ closed: true, got }));
        socket.write(text);
        // Then nothing more: the gateway must not wait for ever.
        setTimeout(() => socket.destroy(new Error("the gateway kept a slow client")), 20_000);
      });
    const headers = await slow("POST /v1/publish HTTP/1.1\r\nHost: x\r\n");
    expect(headers.got).toMatch(/^HTTP\/1\.1 408/);
    const body = await slow(
      "POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer edge-key-0123456789\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    );
    expect(body.closed).toBe(true);
  });

  it("/metrics needs METRICS_TOKEN", async () => {
    expect((await fetch(`${gateway.url}/metrics`)).status).toBe(401);
    const bad = await fetch(`${gateway.url}/metrics`, {
      headers: { authorization: "Bearer wrong-token-0123456789" },
    });
    expect(bad.status).toBe(401);
    const good = await fetch(`${gateway.url}/metrics`, {
      headers: { authorization: "Bearer metrics-token-0123456789" },
    });
    expect(good.status).toBe(200);
    expect(await good.text()).toContain("switchboard_gateway_connections");
  });

  it("whoami reveals neither host name nor pid by default", async () => {
    const client = await connectClient(gateway.url);
    const me = await whoami(client);
    expect(me.gateway).toMatch(/^gw-[0-9a-f]{8}$/);
    expect(me.gateway).not.toContain(String(gateway.pid));
  });
});

describe("CORS_ORIGINS unset", () => {
  it("lets pages of every origin long-poll: the CORS headers reflect their origin", async () => {
    const gateway = await startGateway({ env: {} });
    try {
      const page = "http://127.0.0.1:9";
      const handshake = await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling`, {
        headers: { origin: page },
      });
      expect(handshake.status).toBe(200);
      expect(handshake.headers.get("access-control-allow-origin")).toBe(page);
      const sid = (JSON.parse((await handshake.text()).slice(1)) as { sid: string }).sid;
      // The preflight of the POST a polling client sends next.
      const preflight = await fetch(
        `${gateway.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`,
        {
          method: "OPTIONS",
          headers: {
            origin: page,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
          },
        },
      );
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get("access-control-allow-origin")).toBe(page);
    } finally {
      await gateway.stop();
    }
  });
});

describe("TLS on the gateway", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "switchboard-tls-"));
    execFileSync("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => closeAllClients());

  it("serves HTTPS and WSS with TLS_CERT_FILE/TLS_KEY_FILE, trusted by the certificate", async () => {
    const gateway = await startGateway({
      env: { TLS_CERT_FILE: join(dir, "cert.pem"), TLS_KEY_FILE: join(dir, "key.pem") },
      waitFor: "nothing",
    });
    try {
      const ca = readFileSync(join(dir, "cert.pem"));
      const url = `https://127.0.0.1:${gateway.port}`;
      const status = () =>
        new Promise<number>((resolve, reject) => {
          httpsRequest(`${url}/healthz`, { ca }, (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          })
            .once("error", reject)
            .end();
        });
      await waitFor(async () => (await status()) === 200, { message: "HTTPS /healthz" });
      for (const transports of [["websocket"], ["polling"]]) {
        const client = await connectClient(url, { transports, ca } as never);
        expect(await request(client, "join", "tls:room")).toEqual({ ok: true });
      }
      // Plain HTTP on the TLS port gets nothing useful.
      await expect(
        fetch(`http://127.0.0.1:${gateway.port}/healthz`, { signal: AbortSignal.timeout(5000) }),
      ).rejects.toThrow();
    } finally {
      await gateway.stop();
    }
  });

  it("reaches Redis over TLS (rediss://): two gateways on its TLS port share a broadcast", async () => {
    const tlsPort = await freePort();
    const redis = await startPrivateRedis([
      "--tls-port",
      String(tlsPort),
      "--tls-cert-file",
      join(dir, "cert.pem"),
      "--tls-key-file",
      join(dir, "key.pem"),
      "--tls-auth-clients",
      "no",
    ]);
    const env = {
      BACKPLANE: "redis",
      REDIS_URL: `rediss://127.0.0.1:${tlsPort}`,
      INGEST: "off",
      // The test's own certificate authority, as an operator adds theirs.
      NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
    };
    const [a, b] = await Promise.all([startGateway({ env }), startGateway({ env })]);
    try {
      const listener = await connectClient(b.url);
      expect(await request(listener, "join", "tls:redis")).toEqual({ ok: true });
      const got: unknown[] = [];
      listener.on("message", (data: unknown) => got.push(data));
      const speaker = await connectClient(a.url);
      await waitFor(
        async () => {
          await request(speaker, "publish", { room: "tls:redis", event: "message", data: "x" });
          return got.length > 0;
        },
        { message: "a broadcast across gateways over rediss://" },
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await redis.stop();
    }
  });

  it("reaches RabbitMQ over TLS (amqps://) through a TLS terminator in front of the broker", async () => {
    // RabbitMQ here has no TLS listener: the test terminates TLS itself and forwards the bytes.
    const broker = new URL(await amqpUrl());
    const terminator = createTlsServer(
      { cert: readFileSync(join(dir, "cert.pem")), key: readFileSync(join(dir, "key.pem")) },
      (tlsSocket) => {
        const upstream = connect(Number(broker.port || 5672), broker.hostname);
        tlsSocket.pipe(upstream).pipe(tlsSocket);
        tlsSocket.on("error", () => upstream.destroy());
        upstream.on("error", () => tlsSocket.destroy());
      },
    );
    await new Promise<void>((resolve) => terminator.listen(0, "127.0.0.1", resolve));
    const port = (terminator.address() as { port: number }).port;
    const url = new URL(broker);
    url.protocol = "amqps:";
    url.hostname = "127.0.0.1";
    url.port = String(port);
    const env = {
      BACKPLANE: "amqp",
      AMQP_URL: url.toString(),
      AMQP_EXCHANGE: `switchboard.test.tls.${process.pid}.${Date.now()}`,
      INGEST: "off",
      NODE_EXTRA_CA_CERTS: join(dir, "cert.pem"),
    };
    const [a, b] = await Promise.all([startGateway({ env }), startGateway({ env })]);
    try {
      const listener = await connectClient(b.url);
      expect(await request(listener, "join", "tls:amqp")).toEqual({ ok: true });
      const got: unknown[] = [];
      listener.on("message", (data: unknown) => got.push(data));
      const speaker = await connectClient(a.url);
      await waitFor(
        async () => {
          await request(speaker, "publish", { room: "tls:amqp", event: "message", data: "x" });
          return got.length > 0;
        },
        { message: "a broadcast across gateways over amqps://" },
      );
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await new Promise((resolve) => terminator.close(resolve));
    }
  });
});
