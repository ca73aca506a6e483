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
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { SwitchboardError } from "../../core/errors.js";
import {
  type AuthOptions,
  type AuthResult,
  createAuthenticator,
  devAuthenticator,
  MAX_TOKEN_CHARS,
} from "../../services/gateway/auth.js";

const logger = pino({ level: "silent" });
const SECRET = "a-test-secret-of-at-least-32-characters!";
const now = () => Math.floor(Date.now() / 1000);

const hs256 = (claims: JWTPayload, secret = SECRET) =>
  new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));

/** A JWKS document served over real HTTP; `keys` can be swapped to rotate. */
async function jwksServer(initial: JWK[]) {
  let keys = initial;
  let fetches = 0;
  let up = true;
  const server: Server = createServer((_req, res) => {
    fetches += 1;
    if (!up) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push(server);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    rotate: (next: JWK[]) => {
      keys = next;
    },
    setUp: (value: boolean) => {
      up = value;
    },
    fetches: () => fetches,
  };
}
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => new Promise((resolve) => s.close(() => resolve(undefined)))),
  );
});

async function signingKey(alg: "RS256" | "ES256", kid: string) {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const sign = (claims: JWTPayload) =>
    new SignJWT(claims).setProtectedHeader({ alg, kid }).sign(privateKey);
  return { jwk, sign, publicKey };
}

const failure = (result: AuthResult) => (result.ok ? "ok" : result.code);

describe("JWT authentication with AUTH_JWT_SECRET (HS256)", () => {
  const options: AuthOptions = { jwtSecret: SECRET, clockSkewSec: 5 };

  it.each<[string, () => Promise<unknown> | unknown, string]>([
    ["no token", () => undefined, "missing_token"],
    ["an empty token", () => "", "missing_token"],
    ["a token that is not a string", () => 42, "invalid_token"],
    ["garbage", () => "not.a.jwt", "invalid_token"],
    ["a token over the size limit", () => "a".repeat(MAX_TOKEN_CHARS + 1), "invalid_token"],
    [
      "a token signed with another key",
      () => hs256({ exp: now() + 60 }, "x".repeat(40)),
      "invalid_token",
    ],
    ["alg none", () => new UnsecuredJWT({ exp: now() + 60 }).encode(), "invalid_token"],
    ["a token without exp", () => hs256({ sub: "u1" }), "invalid_token"],
    ["an expired token", () => hs256({ exp: now() - 60 }), "token_expired"],
    [
      "a token not valid yet",
      () => hs256({ exp: now() + 600, nbf: now() + 300 }),
      "token_not_yet_valid",
    ],
    [
      "a sub that cannot be a room name",
      () => hs256({ exp: now() + 60, sub: "a b" }),
      "invalid_token",
    ],
    [
      "a rooms claim that is not a list",
      () => hs256({ exp: now() + 60, rooms: "chat:*" }),
      "invalid_token",
    ],
    [
      "a rooms pattern with * inside",
      () => hs256({ exp: now() + 60, rooms: ["a*b"] }),
      "invalid_token",
    ],
    ["a publish claim of numbers", () => hs256({ exp: now() + 60, publish: [1] }), "invalid_token"],
  ])("refuses %s", async (_name, token, code) => {
    const auth = await createAuthenticator(options, logger);
    expect(failure(await auth.authenticate(await token()))).toBe(code);
  });

  it("accepts a valid token, within the clock skew of exp and nbf", async () => {
    const auth = await createAuthenticator(options, logger);
    for (const claims of [
      { exp: now() + 60 },
      { exp: now() - 2 },
      { exp: now() + 60, nbf: now() + 2 },
    ]) {
      expect(failure(await auth.authenticate(await hs256(claims)))).toBe("ok");
    }
  });

  it("the key is the UTF-8 bytes of the secret", async () => {
    const secret = "ключ-секрет-🔑-of-enough-length-1234567";
    const auth = await createAuthenticator({ jwtSecret: secret, clockSkewSec: 0 }, logger);
    const token = await new SignJWT({ exp: now() + 60 })
      .setProtectedHeader({ alg: "HS256" })
      .sign(Buffer.from(secret, "utf8"));
    expect(failure(await auth.authenticate(token))).toBe("ok");
  });

  it("pins HS256: a token signed with HS512 and the same secret is refused", async () => {
    const auth = await createAuthenticator(options, logger);
    const token = await new SignJWT({ exp: now() + 60 })
      .setProtectedHeader({ alg: "HS512" })
      .sign(new TextEncoder().encode(SECRET));
    expect(failure(await auth.authenticate(token))).toBe("invalid_token");
  });

  it("checks the issuer and the audience when they are set", async () => {
    const auth = await createAuthenticator(
      { ...options, issuer: "https://idp.test", audience: "switchboard" },
      logger,
    );
    const good = { exp: now() + 60, iss: "https://idp.test", aud: "switchboard" };
    expect(failure(await auth.authenticate(await hs256(good)))).toBe("ok");
    expect(failure(await auth.authenticate(await hs256({ ...good, iss: "https://evil" })))).toBe(
      "invalid_token",
    );
    expect(failure(await auth.authenticate(await hs256({ ...good, aud: "other" })))).toBe(
      "invalid_token",
    );
    expect(failure(await auth.authenticate(await hs256({ exp: now() + 60 })))).toBe(
      "invalid_token",
    );
  });

  it("turns claims into rights: sub, rooms and publish patterns", async () => {
    const auth = await createAuthenticator(options, logger);
    const result = await auth.authenticate(
      await hs256({
        exp: now() + 60,
        sub: "alice",
        rooms: ["chat:*", "lobby"],
        publish: ["chat:1"],
      }),
    );
    if (!result.ok) throw new Error(result.detail);
    const { identity } = result;
    expect(identity.sub).toBe("alice");
    expect(identity.rights.join.matches("chat:42")).toBe(true);
    expect(identity.rights.join.matches("lobby")).toBe(true);
    expect(identity.rights.join.matches("lobby2")).toBe(false);
    expect(identity.rights.publish.matches("chat:1")).toBe(true);
    expect(identity.rights.publish.matches("chat:2")).toBe(false);
    expect(identity.expiresAt).toBeGreaterThan(Date.now());
  });

  it("a token without rooms/publish claims gets nothing, unless defaults allow it", async () => {
    const token = await hs256({ exp: now() + 60 });
    const bare = await createAuthenticator(options, logger);
    const r1 = await bare.authenticate(token);
    expect(r1.ok && r1.identity.rights.join.matches("chat:1")).toBe(false);
    expect(r1.ok && r1.identity.rights.publish.matches("chat:1")).toBe(false);
    const withDefaults = await createAuthenticator(
      { ...options, defaultRooms: ["public:*"], defaultPublish: ["public:chat"] },
      logger,
    );
    const r2 = await withDefaults.authenticate(token);
    expect(r2.ok && r2.identity.rights.join.matches("public:x")).toBe(true);
    expect(r2.ok && r2.identity.rights.publish.matches("public:chat")).toBe(true);
    expect(r2.ok && r2.identity.rights.publish.matches("public:x")).toBe(false);
    // A claim replaces the default.
    const r3 = await withDefaults.authenticate(await hs256({ exp: now() + 60, rooms: [] }));
    expect(r3.ok && r3.identity.rights.join.matches("public:x")).toBe(false);
  });

  it("a bad default pattern is a config error naming the variable", async () => {
    await expect(
      createAuthenticator({ ...options, defaultRooms: ["a*b"] }, logger),
    ).rejects.toThrow(/AUTH_DEFAULT_ROOMS/);
  });
});

describe("JWT authentication with AUTH_JWKS_URL (RS256/ES256)", () => {
  it("accepts RS256 and ES256 tokens from the key set, refuses unknown keys", async () => {
    const rsa = await signingKey("RS256", "rsa-1");
    const ec = await signingKey("ES256", "ec-1");
    const stranger = await signingKey("RS256", "rsa-1");
    const jwks = await jwksServer([rsa.jwk, ec.jwk]);
    const auth = await createAuthenticator({ jwksUrl: jwks.url, clockSkewSec: 5 }, logger);
    expect(failure(await auth.authenticate(await rsa.sign({ exp: now() + 60 })))).toBe("ok");
    expect(failure(await auth.authenticate(await ec.sign({ exp: now() + 60 })))).toBe("ok");
    expect(failure(await auth.authenticate(await stranger.sign({ exp: now() + 60 })))).toBe(
      "invalid_token",
    );
  });

  it("refuses HS/RS confusion: HS256 signed with the public key", async () => {
    const rsa = await signingKey("RS256", "rsa-1");
    const jwks = await jwksServer([rsa.jwk]);
    const pem = await exportSPKI(rsa.publicKey);
    const forged = await new SignJWT({ exp: now() + 60 })
      .setProtectedHeader({ alg: "HS256", kid: "rsa-1" })
      .sign(new TextEncoder().encode(pem));
    const jwksOnly = await createAuthenticator({ jwksUrl: jwks.url, clockSkewSec: 5 }, logger);
    expect(failure(await jwksOnly.authenticate(forged))).toBe("invalid_token");
    const both = await createAuthenticator(
      { jwksUrl: jwks.url, jwtSecret: SECRET, clockSkewSec: 5 },
      logger,
    );
    expect(failure(await both.authenticate(forged))).toBe("invalid_token");
    expect(failure(await both.authenticate(await hs256({ exp: now() + 60 })))).toBe("ok");
    expect(failure(await both.authenticate(await rsa.sign({ exp: now() + 60 })))).toBe("ok");
  });

  it("follows a key rotation: a token with a new kid makes it fetch the key set again", async () => {
    const old = await signingKey("RS256", "k1");
    const next = await signingKey("ES256", "k2");
    const jwks = await jwksServer([old.jwk]);
    const auth = await createAuthenticator(
      { jwksUrl: jwks.url, clockSkewSec: 5, jwksCooldownMs: 0 },
      logger,
    );
    expect(failure(await auth.authenticate(await old.sign({ exp: now() + 60 })))).toBe("ok");
    jwks.rotate([next.jwk]);
    const before = jwks.fetches();
    expect(failure(await auth.authenticate(await next.sign({ exp: now() + 60 })))).toBe("ok");
    expect(jwks.fetches()).toBe(before + 1);
    // The retired key is gone from the set: its tokens are refused now.
    expect(failure(await auth.authenticate(await old.sign({ exp: now() + 60 })))).toBe(
      "invalid_token",
    );
  });

  it("an unknown kid does not make it fetch again within the cooldown", async () => {
    const key = await signingKey("RS256", "k1");
    const stranger = await signingKey("RS256", "k9");
    const jwks = await jwksServer([key.jwk]);
    const auth = await createAuthenticator(
      { jwksUrl: jwks.url, clockSkewSec: 5, jwksCooldownMs: 60_000 },
      logger,
    );
    const before = jwks.fetches();
    for (let i = 0; i < 5; i++) {
      expect(failure(await auth.authenticate(await stranger.sign({ exp: now() + 60 })))).toBe(
        "invalid_token",
      );
    }
    expect(jwks.fetches()).toBe(before);
  });

  it("a key set that cannot be fetched at start is a config error naming AUTH_JWKS_URL", async () => {
    const jwks = await jwksServer([]);
    jwks.setUp(false);
    const err = await createAuthenticator({ jwksUrl: jwks.url, clockSkewSec: 5 }, logger).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe("SWB_ERR_INVALID_CONFIG");
    expect((err as SwitchboardError).message).toMatch(
      /^invalid environment variable AUTH_JWKS_URL:/,
    );
  });

  it("a key set without a usable signing key is a config error", async () => {
    const jwks = await jwksServer([{ kty: "oct", k: "c2VjcmV0", kid: "hmac" }]);
    await expect(
      createAuthenticator({ jwksUrl: jwks.url, clockSkewSec: 5 }, logger),
    ).rejects.toThrow(/AUTH_JWKS_URL: the key set holds no RS256 or ES256 signing key/);
  });

  it("a key set that goes away later refuses clients as unavailable, never lets them in", async () => {
    const key = await signingKey("RS256", "k1");
    const rotated = await signingKey("RS256", "k2");
    const jwks = await jwksServer([key.jwk]);
    const auth = await createAuthenticator(
      { jwksUrl: jwks.url, clockSkewSec: 5, jwksCooldownMs: 0 },
      logger,
    );
    jwks.setUp(false);
    expect(failure(await auth.authenticate(await rotated.sign({ exp: now() + 60 })))).toBe(
      "auth_unavailable",
    );
    // Keys already fetched keep working.
    expect(failure(await auth.authenticate(await key.sign({ exp: now() + 60 })))).toBe("ok");
  });
});

describe("dev mode (neither AUTH_JWT_SECRET nor AUTH_JWKS_URL)", () => {
  it("lets every client in, anonymous, with every room unless defaults narrow it", async () => {
    const open = devAuthenticator();
    const result = await open.authenticate(undefined);
    expect(open.mode).toBe("dev");
    expect(result.ok && result.identity.sub).toBeUndefined();
    expect(result.ok && result.identity.rights.join.matches("anything")).toBe(true);
    const narrowed = devAuthenticator({ defaultRooms: ["demo:*"], defaultPublish: [] });
    const r2 = await narrowed.authenticate("ignored");
    expect(r2.ok && r2.identity.rights.join.matches("demo:1")).toBe(true);
    expect(r2.ok && r2.identity.rights.join.matches("chat:1")).toBe(false);
    expect(r2.ok && r2.identity.rights.publish.matches("demo:1")).toBe(false);
  });
});
