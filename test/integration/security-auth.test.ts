import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import {
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from "jose";
import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { redisUrl } from "../support/brokers.js";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { nextEvent, waitFor } from "../support/wait.js";

/**
 * Client authentication against real gateway processes (two, on the Redis backplane): who is let
 * in, what each may do, and that a refused or forbidden client never disturbs the others.
 */

const SECRET = `test-secret-${randomBytes(16).toString("hex")}`;
const API_KEY = "security-test-key";
const now = () => Math.floor(Date.now() / 1000);
const hs256 = (claims: JWTPayload, secret = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));

type ClientOptions = Partial<ManagerOptions & SocketOptions>;

/** Connects and expects a refusal: resolves with connect_error's message and data. */
async function refusal(url: string, options: ClientOptions) {
  const socket = io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    ...options,
  });
  try {
    const [err] = await Promise.race([
      nextEvent<[Error & { data?: unknown }]>(socket, "connect_error"),
      nextEvent(socket, "connect").then(() => {
        throw new Error("the client was let in");
      }),
    ]);
    return { message: err.message, data: err.data };
  } finally {
    socket.disconnect();
  }
}

async function publishOverHttp(gateway: GatewayProcess, command: object) {
  const res = await fetch(`${gateway.url}/v1/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ v: 1, ...command }),
  });
  expect(res.status).toBe(202);
}

describe("JWT authentication on the gateway (AUTH_JWT_SECRET)", () => {
  const suffix = randomBytes(4).toString("hex");
  const room = (name: string) => `${name}:${suffix}`;
  let a: GatewayProcess;
  let b: GatewayProcess;
  /** A well-behaved client on gateway A in `chat` rooms, checked after every case. */
  let bystander: Socket;
  let bystanderGot: unknown[];

  const env = async () => ({
    BACKPLANE: "redis",
    REDIS_URL: await redisUrl(),
    INGEST: "off",
    AUTH_JWT_SECRET: SECRET,
    PUBLISH_API_KEYS: API_KEY,
  });

  beforeAll(async () => {
    [a, b] = await Promise.all([
      startGateway({ env: await env() }),
      startGateway({ env: await env() }),
    ]);
    const token = await hs256({
      exp: now() + 3600,
      sub: `bystander-${suffix}`,
      rooms: [`chat:${suffix}*`],
      publish: [`chat:${suffix}*`],
    });
    // Not through connectClient: closeAllClients after each test must leave it connected.
    bystander = io(a.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      auth: { token },
    });
    await nextEvent(bystander, "connect");
    expect(await request(bystander, "join", room("chat"))).toEqual({ ok: true });
    bystanderGot = collect(bystander, "message");
  });
  afterAll(async () => {
    bystander?.disconnect();
    await Promise.all([a?.stop(), b?.stop()]);
  });
  afterEach(() => closeAllClients());

  /** The bystander is still connected and still receives what is published to its room. */
  async function bystanderStillServed() {
    expect(bystander.connected).toBe(true);
    const marker = `marker-${randomBytes(4).toString("hex")}`;
    await publishOverHttp(b, { rooms: [room("chat")], event: "message", data: marker });
    await waitFor(() => bystanderGot.includes(marker), { message: "the marker at the bystander" });
  }

  it.each<[string, () => Promise<ClientOptions>, string, string]>([
    ["no token", async () => ({}), "missing token", "missing_token"],
    [
      "a malformed token",
      async () => ({ auth: { token: "abc.def" } }),
      "invalid token",
      "invalid_token",
    ],
    [
      "a token signed with another key",
      async () => ({ auth: { token: await hs256({ exp: now() + 60 }, "z".repeat(40)) } }),
      "invalid token",
      "invalid_token",
    ],
    [
      "an unsigned token (alg none)",
      async () => ({
        auth: { token: new UnsecuredJWT({ exp: now() + 60, rooms: ["*"] }).encode() },
      }),
      "invalid token",
      "invalid_token",
    ],
    [
      "an expired token",
      async () => ({ auth: { token: await hs256({ exp: now() - 3600 }) } }),
      "token expired",
      "token_expired",
    ],
    [
      "a token that is not valid yet",
      async () => ({ auth: { token: await hs256({ exp: now() + 7200, nbf: now() + 3600 }) } }),
      "token not yet valid",
      "token_not_yet_valid",
    ],
    [
      "a valid token in the query string only",
      async () => ({ query: { token: await hs256({ exp: now() + 60 }) } }),
      "missing token",
      "missing_token",
    ],
  ])("refuses a client with %s, and serves the others", async (_name, options, message, code) => {
    const refused = await refusal(a.url, await options());
    expect(refused).toEqual({ message, data: { code } });
    await bystanderStillServed();
  });

  it("takes the token from an Authorization: Bearer header too (long-polling)", async () => {
    const token = await hs256({ exp: now() + 60, sub: `header-${suffix}` });
    const client = await connectClient(a.url, {
      transports: ["polling"],
      extraHeaders: { authorization: `Bearer ${token}` },
    });
    expect((await whoami(client)).rooms).toEqual([`user:header-${suffix}`]);
  });

  it("claims decide what a client may join and publish to; forbidden is an ack error", async () => {
    const token = await hs256({
      exp: now() + 600,
      sub: `alice-${suffix}`,
      rooms: [`chat:${suffix}*`],
      publish: [room("chat")],
    });
    const alice = await connectClient(b.url, { auth: { token } });
    const other = await connectClient(b.url, {
      auth: { token: await hs256({ exp: now() + 600, rooms: ["*"] }) },
    });
    const secretGot = collect(other, "message");
    expect(await request(other, "join", room("secret"))).toEqual({ ok: true });

    expect(await request(alice, "join", room("chat"))).toEqual({ ok: true });
    expect(await request(alice, "join", `chat:${suffix}:sub`)).toEqual({ ok: true });
    for (const forbidden of [room("secret"), `user:bystander-${suffix}`, other.id as string]) {
      expect(await request(alice, "join", forbidden)).toEqual({ error: "forbidden" });
    }
    expect(
      await request(alice, "publish", { room: room("secret"), event: "message", data: "leak" }),
    ).toEqual({ error: "forbidden" });
    expect(
      await request(alice, "publish", { room: `chat:${suffix}:sub`, event: "message", data: 1 }),
    ).toEqual({ error: "forbidden" });
    expect(
      await request(alice, "publish", { room: room("chat"), event: "message", data: "hello" }),
    ).toEqual({ ok: true });
    // Delivered across gateways to the room's members, and the forbidden one nowhere.
    await waitFor(() => bystanderGot.includes("hello"), { message: "alice's message at A" });
    await publishOverHttp(a, { rooms: [room("secret")], event: "message", data: "after" });
    await waitFor(() => secretGot.includes("after"), { message: "the marker in the secret room" });
    expect(secretGot).toEqual(["after"]);
    expect(alice.connected).toBe(true);
    await bystanderStillServed();
  });

  it("a token without rooms or publish claims may join and publish nothing", async () => {
    const client = await connectClient(a.url, {
      auth: { token: await hs256({ exp: now() + 60 }) },
    });
    expect(await request(client, "join", room("chat"))).toEqual({ error: "forbidden" });
    expect(
      await request(client, "publish", { room: room("chat"), event: "message", data: "x" }),
    ).toEqual({ error: "forbidden" });
    expect((await whoami(client)).rooms).toEqual([]);
  });

  it("a backend reaches one user on any gateway through user:<sub>, and only that user", async () => {
    const carol = await connectClient(b.url, {
      auth: { token: await hs256({ exp: now() + 600, sub: `carol-${suffix}` }) },
    });
    const dave = await connectClient(b.url, {
      auth: { token: await hs256({ exp: now() + 600, sub: `dave-${suffix}` }) },
    });
    const carolGot = collect(carol, "dm");
    const daveGot = collect(dave, "dm");
    expect((await whoami(carol)).rooms).toEqual([`user:carol-${suffix}`]);
    await publishOverHttp(a, { rooms: [`user:carol-${suffix}`], event: "dm", data: "for carol" });
    await publishOverHttp(a, { rooms: [`user:dave-${suffix}`], event: "dm", data: "for dave" });
    await waitFor(() => carolGot.length === 1 && daveGot.length === 1, {
      message: "one message each",
    });
    expect(carolGot).toEqual(["for carol"]);
    expect(daveGot).toEqual(["for dave"]);
  });

  it("refresh replaces the token: same sub only, a bad one is an ack error", async () => {
    const sub = `erin-${suffix}`;
    const erin = await connectClient(a.url, {
      auth: { token: await hs256({ exp: now() + 600, sub, rooms: [`chat:${suffix}*`] }) },
    });
    expect(await request(erin, "join", room("chat"))).toEqual({ ok: true });
    expect(await request(erin, "refresh", "garbage")).toEqual({ error: "invalid_token" });
    expect(await request(erin, "refresh", await hs256({ exp: now() - 3600, sub }))).toEqual({
      error: "token_expired",
    });
    expect(
      await request(erin, "refresh", await hs256({ exp: now() + 600, sub: `mallory-${suffix}` })),
    ).toEqual({ error: "forbidden" });
    // Narrower rights: the room they no longer allow is left.
    expect(
      await request(erin, "refresh", await hs256({ exp: now() + 600, sub, rooms: ["lobby"] })),
    ).toEqual({ ok: true });
    expect((await whoami(erin)).rooms).toEqual([`user:${sub}`]);
    expect(await request(erin, "join", "lobby")).toEqual({ ok: true });
    expect(await request(erin, "join", room("chat"))).toEqual({ error: "forbidden" });
  });
});

/** A JWKS document over real HTTP, as an identity provider serves it; `rotate` swaps the keys. */
async function startJwksServer(keys: JWK[]) {
  let current = keys;
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ keys: current }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`,
    rotate: (next: JWK[]) => {
      current = next;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function rsaKey(kid: string) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return {
    publicKey,
    jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" },
    sign: (claims: JWTPayload) =>
      new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid }).sign(privateKey),
  };
}

describe("JWT authentication on the gateway (AUTH_JWKS_URL)", () => {
  it("accepts tokens of the provider's keys and refuses an HS256 token forged with its public key", async () => {
    const key = await rsaKey("k1");
    const jwks = await startJwksServer([key.jwk]);
    const gateway = await startGateway({ env: { AUTH_JWKS_URL: jwks.url } });
    try {
      const client = await connectClient(gateway.url, {
        auth: { token: await key.sign({ exp: now() + 60, sub: "rs-user" }) },
      });
      expect((await whoami(client)).rooms).toEqual(["user:rs-user"]);
      const forged = await new SignJWT({ exp: now() + 60, rooms: ["*"] })
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .sign(new TextEncoder().encode(await exportSPKI(key.publicKey)));
      expect(await refusal(gateway.url, { auth: { token: forged } })).toEqual({
        message: "invalid token",
        data: { code: "invalid_token" },
      });
      expect(client.connected).toBe(true);
    } finally {
      closeAllClients();
      await gateway.stop();
      await jwks.close();
    }
  });

  it("follows a key rotation at the provider without a restart", async () => {
    const first = await rsaKey("2024-01");
    const second = await rsaKey("2024-02");
    const jwks = await startJwksServer([first.jwk]);
    const gateway = await startGateway({
      env: { AUTH_JWKS_URL: jwks.url, AUTH_JWKS_COOLDOWN_MS: "0" },
    });
    try {
      await connectClient(gateway.url, { auth: { token: await first.sign({ exp: now() + 60 }) } });
      // The provider publishes the next key beside the old one, then retires the old one.
      jwks.rotate([first.jwk, second.jwk]);
      await connectClient(gateway.url, { auth: { token: await second.sign({ exp: now() + 60 }) } });
      jwks.rotate([second.jwk]);
      const stale = await first.sign({ exp: now() + 60 });
      // Keys already fetched stay until the cache ages out; a fresh fetch drops the old one.
      await connectClient(gateway.url, { auth: { token: stale } });
      const unknown = await rsaKey("2024-03");
      expect(
        await refusal(gateway.url, { auth: { token: await unknown.sign({ exp: now() + 60 }) } }),
      ).toEqual({ message: "invalid token", data: { code: "invalid_token" } });
      expect(await refusal(gateway.url, { auth: { token: stale } })).toEqual({
        message: "invalid token",
        data: { code: "invalid_token" },
      });
    } finally {
      closeAllClients();
      await gateway.stop();
      await jwks.close();
    }
  });

  it("a key set that cannot be fetched at start stops the gateway with a line naming AUTH_JWKS_URL", async () => {
    const jwks = await startJwksServer([]);
    const url = jwks.url;
    await jwks.close();
    const gateway = await startGateway({ env: { AUTH_JWKS_URL: url }, waitFor: "nothing" });
    const { code } = await gateway.exited;
    expect(code).toBe(78);
    expect(gateway.output()).toContain(
      "switchboard: invalid environment variable AUTH_JWKS_URL: could not fetch the key set",
    );
  });
});

describe("token settings on the gateway", () => {
  afterEach(() => closeAllClients());

  it("AUTH_JWT_ISSUER and AUTH_JWT_AUDIENCE refuse tokens of another issuer or audience", async () => {
    const gateway = await startGateway({
      env: {
        AUTH_JWT_SECRET: SECRET,
        AUTH_JWT_ISSUER: "https://idp.example",
        AUTH_JWT_AUDIENCE: "switchboard",
      },
    });
    try {
      const claims = { exp: now() + 60, iss: "https://idp.example", aud: "switchboard" };
      await connectClient(gateway.url, { auth: { token: await hs256(claims) } });
      for (const wrong of [{ iss: "https://other.example" }, { aud: "another-api" }]) {
        expect(
          await refusal(gateway.url, { auth: { token: await hs256({ ...claims, ...wrong }) } }),
        ).toEqual({ message: "invalid token", data: { code: "invalid_token" } });
      }
    } finally {
      await gateway.stop();
    }
  });

  it("AUTH_DEFAULT_ROOMS / AUTH_DEFAULT_PUBLISH give tokens without claims their rights", async () => {
    const gateway = await startGateway({
      env: {
        AUTH_JWT_SECRET: SECRET,
        AUTH_DEFAULT_ROOMS: "public:*,lobby",
        AUTH_DEFAULT_PUBLISH: "lobby",
      },
    });
    try {
      const client = await connectClient(gateway.url, {
        auth: { token: await hs256({ exp: now() + 60 }) },
      });
      expect(await request(client, "join", "public:news")).toEqual({ ok: true });
      expect(await request(client, "join", "lobby")).toEqual({ ok: true });
      expect(await request(client, "join", "private:1")).toEqual({ error: "forbidden" });
      expect(await request(client, "publish", { room: "lobby", event: "m", data: 1 })).toEqual({
        ok: true,
      });
      expect(
        await request(client, "publish", { room: "public:news", event: "m", data: 1 }),
      ).toEqual({ error: "forbidden" });
    } finally {
      await gateway.stop();
    }
  });

  it("a socket is disconnected when its token expires, unless it refreshed it in time", async () => {
    const gateway = await startGateway({
      env: { AUTH_JWT_SECRET: SECRET, AUTH_CLOCK_SKEW_SEC: "0", LOG_LEVEL: "info" },
    });
    try {
      const exp = now() + 3;
      const stays = await connectClient(gateway.url, {
        auth: { token: await hs256({ exp, sub: "stays" }) },
      });
      const goes = await connectClient(gateway.url, {
        auth: { token: await hs256({ exp, sub: "goes" }) },
      });
      expect(
        await request(stays, "refresh", await hs256({ exp: now() + 600, sub: "stays" })),
      ).toEqual({ ok: true });
      const [reason] = await nextEvent<[string]>(goes, "disconnect", 15_000);
      expect(reason).toBe("io server disconnect");
      expect(stays.connected).toBe(true);
      expect((await whoami(stays)).rooms).toEqual(["user:stays"]);
      await waitFor(() => gateway.output().includes("client disconnected: token expired"), {
        message: "the expiry in the log",
      });
    } finally {
      await gateway.stop();
    }
  });
});
