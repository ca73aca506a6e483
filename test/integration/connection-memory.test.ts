import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { SignJWT } from "jose";
import type { Socket as ServerSocket } from "socket.io";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createBackplane } from "../../adapters/backplane.js";
import { createAuthenticator } from "../../services/gateway/auth.js";
import { loadConfig } from "../../services/gateway/config.js";
import { createLogger } from "../../services/gateway/logger.js";
import { createGateway, type Gateway } from "../../services/gateway/server.js";
import { closeAllClients, connectClient, request, whoami } from "../support/clients.js";
import { nextEvent, waitFor } from "../support/wait.js";

/**
 * What a gateway keeps per connection is cut to what it reads (services/gateway/slim-requests.ts,
 * session.ts, handshake.ts): these prove that what clients and server-side code rely on still
 * holds, and that what was cut is really let go.
 */

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Resolves once `ref`'s object has been collected (full GCs between checks), or fails. */
const collected = (ref: WeakRef<object>, message: string) =>
  waitFor(
    () => {
      gc();
      return ref.deref() === undefined;
    },
    { timeoutMs: 5000, intervalMs: 50, message },
  );

const SECRET = `test-secret-${randomBytes(16).toString("hex")}`;
const now = () => Math.floor(Date.now() / 1000);
const token = (claims: Record<string, unknown>) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));

async function startGateway(env: Record<string, string>) {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "silent",
    SHUTDOWN_DRAIN_MS: "0",
    GATEWAY_ID: "memory-gw",
    ...env,
  });
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  const authenticator = await createAuthenticator(
    { jwtSecret: config.authJwtSecret, clockSkewSec: 0 },
    logger,
  );
  const gateway = createGateway({
    config,
    backplane: await createBackplane(config),
    logger,
    authenticator,
  });
  const port = await gateway.listen();
  // Every server-side socket, and every upgrade request, as they come.
  const sockets: ServerSocket[] = [];
  gateway.io.on("connection", (socket) => sockets.push(socket));
  const upgrades: WeakRef<IncomingMessage>[] = [];
  gateway.httpServer.on("upgrade", (req: IncomingMessage) => upgrades.push(new WeakRef(req)));
  return { gateway, url: `http://127.0.0.1:${port}`, sockets, upgrades };
}

const disconnectReasons = async (gateway: Gateway) =>
  (await gateway.metrics.registry.getSingleMetric("switchboard_gateway_disconnects_total")?.get())
    ?.values ?? [];

describe("per-connection memory: what stays true", () => {
  describe("in dev mode", () => {
    let gw: Awaited<ReturnType<typeof startGateway>>;
    beforeAll(async () => {
      gw = await startGateway({});
    });
    afterAll(() => gw?.gateway.shutdown());
    afterEach(() => closeAllClients());

    for (const transports of [["websocket"], ["polling", "websocket"]]) {
      it(`socket.handshake holds what Socket.IO promises (${transports.join(" then ")})`, async () => {
        const before = gw.sockets.length;
        const client = await connectClient(gw.url, {
          transports,
          query: { app: "memory-test" },
          extraHeaders: { "x-client-tag": "tag-1" },
          auth: { hello: "world" },
        });
        if (transports.length === 2) {
          await waitFor(() => client.io.engine.transport.name === "websocket", {
            message: "the upgrade to WebSocket",
          });
        }
        const socket = gw.sockets[before];
        expect(socket?.id).toBe(client.id);
        const { handshake } = socket as ServerSocket;
        expect(handshake.headers["x-client-tag"]).toBe("tag-1");
        expect(handshake.headers.host).toBe(new URL(gw.url).host);
        expect(handshake.query.app).toBe("memory-test");
        expect(handshake.query.EIO).toBe("4");
        expect(handshake.url).toMatch(/^\/socket\.io\/\?.*app=memory-test/);
        expect(handshake.address).toMatch(/127\.0\.0\.1$/);
        expect(handshake.secure).toBe(false);
        expect(handshake.xdomain).toBe(false);
        expect(handshake.auth).toEqual({ hello: "world" });
        expect(handshake.time).toBe(new Date(handshake.issued).toString());
        // The client protocol on top of it.
        expect(await whoami(client)).toEqual({ id: client.id, gateway: "memory-gw", rooms: [] });
        expect(await request(client, "join", "memory:room")).toEqual({ ok: true });
        expect(await request(client, "refresh", "any")).toEqual({ ok: true });
      });
    }

    it("lets go of every upgrade request once connections are open", async () => {
      const from = gw.upgrades.length;
      const clients = await Promise.all([
        connectClient(gw.url),
        connectClient(gw.url),
        connectClient(gw.url, { transports: ["polling", "websocket"] }),
      ]);
      await waitFor(() => gw.upgrades.length - from === 3, { message: "three upgrades" });
      for (const ref of gw.upgrades.slice(from)) {
        await collected(ref, "the upgrade request to be collected");
      }
      // The connections themselves are fine.
      for (const client of clients) expect((await whoami(client)).id).toBe(client.id);
    });

    it("counts disconnects by Socket.IO's reason, and keeps no socket once it is gone", async () => {
      const before = gw.sockets.length;
      const client = await connectClient(gw.url);
      const socket = new WeakRef(gw.sockets[before] as ServerSocket);
      gw.sockets.length = before;
      client.disconnect();
      await waitFor(
        async () =>
          (await disconnectReasons(gw.gateway)).some(
            (v) => v.labels.reason === "client namespace disconnect" && v.value >= 1,
          ),
        { message: "the disconnect counted with its reason" },
      );
      await collected(socket, "the server-side socket to be collected");
    });
  });

  describe("with tokens (AUTH_JWT_SECRET)", () => {
    let gw: Awaited<ReturnType<typeof startGateway>>;
    beforeAll(async () => {
      gw = await startGateway({ AUTH_JWT_SECRET: SECRET });
    });
    afterAll(() => gw?.gateway.shutdown());
    afterEach(() => closeAllClients());

    it("rights, refresh and whoami follow each socket's own token", async () => {
      const ann = await connectClient(gw.url, {
        auth: { token: await token({ exp: now() + 600, sub: "ann", rooms: ["a:*"] }) },
      });
      const bob = await connectClient(gw.url, {
        auth: { token: await token({ exp: now() + 600, sub: "bob", rooms: ["b:*"] }) },
      });
      expect(await request(ann, "join", "a:1")).toEqual({ ok: true });
      expect(await request(ann, "join", "b:1")).toEqual({ error: "forbidden" });
      expect(await request(bob, "join", "b:1")).toEqual({ ok: true });
      expect(
        await request(ann, "refresh", await token({ exp: now() + 600, sub: "ann", rooms: [] })),
      ).toEqual({ ok: true });
      expect((await whoami(ann)).rooms).toEqual(["user:ann"]);
      expect((await whoami(bob)).rooms.sort()).toEqual(["b:1", "user:bob"]);
    });

    it("a token's expiry disconnects its socket with io server disconnect", async () => {
      const client = await connectClient(gw.url, {
        auth: { token: await token({ exp: now() + 1, sub: "short" }) },
      });
      const [reason] = await nextEvent<[string]>(client, "disconnect", 10_000);
      expect(reason).toBe("io server disconnect");
    });

    it("a socket that left is not kept until its token would have expired", async () => {
      const before = gw.sockets.length;
      const client = await connectClient(gw.url, {
        auth: { token: await token({ exp: now() + 3600, sub: "leaves" }) },
      });
      const socket = new WeakRef(gw.sockets[before] as ServerSocket);
      gw.sockets.length = before;
      client.disconnect();
      await collected(socket, "the server-side socket to be collected before its expiry");
    });
  });
});
