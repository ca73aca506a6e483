import type { JWTPayload, JWTVerifyGetKey } from "jose";
import { isValidRoomName } from "../../core/names.js";
import { configError } from "./config.js";
import type { Logger } from "./logger.js";
import { ALL_RIGHTS, parsePatterns, type Rights, RoomPatterns } from "./rights.js";

/**
 * Client authentication: a JWT from the Socket.IO handshake, checked with `jose`.
 *
 * - `AUTH_JWT_SECRET`: HS256, the key is the UTF-8 bytes of the value.
 * - `AUTH_JWKS_URL`: RS256/ES256 keys from a JWKS document, cached and re-fetched when a token
 *   names a key id the cache does not hold (at most once per cooldown), so keys can rotate.
 * - Both: a token's `alg` picks the key source; each source only takes its own algorithms, so a
 *   token signed with HMAC over a public key (HS/RS confusion) never verifies.
 * - Neither: dev mode, every client is anonymous.
 *
 * Every token must carry `exp`; `nbf` is honoured; both with `clockSkewSec` of tolerance.
 *
 * `jose` is loaded only when a token source is configured: a dev-mode gateway does not carry it
 * (≈ 1 MB of heap and 2 MB of RSS at start, measured with bench/heap-diff.ts's snapshots).
 */

type Jose = typeof import("jose");

export interface AuthOptions {
  jwtSecret?: string | undefined;
  jwksUrl?: string | undefined;
  issuer?: string | undefined;
  audience?: string | undefined;
  /** Tolerance for `exp`/`nbf`, in seconds. */
  clockSkewSec: number;
  /** JWKS fetch timeout, in milliseconds. @default 5000 */
  jwksTimeoutMs?: number;
  /** After a fetch, how long an unknown key id does not trigger another one, in ms. @default 30000 */
  jwksCooldownMs?: number;
  /** How long fetched keys are used before they are fetched again, in ms. @default 600000 */
  jwksCacheMaxAgeMs?: number;
  /** Rooms a client may join when its token has no `rooms` claim (undefined: none; dev mode: all). */
  defaultRooms?: readonly string[] | undefined;
  /** Rooms a client may publish to when its token has no `publish` claim (as `defaultRooms`). */
  defaultPublish?: readonly string[] | undefined;
}

/** What a refused client reads in `connect_error` (`err.message`); `err.data.code` is the code. */
export const AUTH_FAILURES = {
  missing_token: "missing token",
  invalid_token: "invalid token",
  token_expired: "token expired",
  token_not_yet_valid: "token not yet valid",
  auth_unavailable: "authentication unavailable",
} as const;
export type AuthFailureCode = keyof typeof AUTH_FAILURES;

export interface Identity {
  /** The token's `sub`; the client is in room `user:<sub>`. */
  readonly sub: string | undefined;
  readonly rights: Rights;
  /** When the token stops being accepted (its `exp` plus the clock skew), in ms since the epoch. */
  readonly expiresAt: number | undefined;
}

export type AuthResult =
  | { ok: true; identity: Identity }
  /** `detail` is for the gateway's log only: never sent to the client. */
  | { ok: false; code: AuthFailureCode; detail: string };

export interface Authenticator {
  readonly mode: "jwt" | "dev";
  authenticate(token: unknown): Promise<AuthResult>;
}

/** Longer tokens are refused before any parsing. */
export const MAX_TOKEN_CHARS = 8192;

const HMAC_ALGORITHMS = ["HS256"];
const JWKS_ALGORITHMS = ["RS256", "ES256"];

/** Marks a failure of the key source (JWKS unreachable), not of the token. */
class KeySourceError extends Error {}

/**
 * Builds the authenticator. With AUTH_JWKS_URL it fetches the keys once before it returns: a
 * document that cannot be fetched or holds no usable key is a SWB_ERR_INVALID_CONFIG error naming the variable.
 */
export async function createAuthenticator(
  options: AuthOptions,
  logger: Logger,
): Promise<Authenticator> {
  if (options.jwtSecret === undefined && options.jwksUrl === undefined) {
    return devAuthenticator(options);
  }
  const defaults = defaultRights(options);
  const jose = await import("jose");
  const { decodeProtectedHeader, errors, jwtVerify } = jose;
  const secret =
    options.jwtSecret === undefined ? undefined : new TextEncoder().encode(options.jwtSecret);
  const jwks =
    options.jwksUrl === undefined
      ? undefined
      : await loadJwks(jose, options.jwksUrl, options, logger);
  const algorithms = [...(secret ? HMAC_ALGORITHMS : []), ...(jwks ? JWKS_ALGORITHMS : [])];
  const key: JWTVerifyGetKey = async (header, token) => {
    if (HMAC_ALGORITHMS.includes(header.alg) && secret) return secret;
    if (!jwks) throw new errors.JOSEAlgNotAllowed(`alg ${header.alg} not allowed`);
    try {
      return await jwks(header, token);
    } catch (err) {
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys
      ) {
        throw err;
      }
      throw new KeySourceError(describe(jose, err));
    }
  };
  const rights = {
    join: defaults.join ?? RoomPatterns.none,
    publish: defaults.publish ?? RoomPatterns.none,
  };

  return {
    mode: "jwt",
    async authenticate(token) {
      if (token === undefined || token === null || token === "") {
        return refuse("missing_token", "no token in auth.token or an Authorization header");
      }
      if (typeof token !== "string") return refuse("invalid_token", "token is not a string");
      if (token.length > MAX_TOKEN_CHARS) {
        return refuse("invalid_token", `token is over ${MAX_TOKEN_CHARS} chars`);
      }
      let payload: JWTPayload;
      try {
        // Malformed headers fail here, before any key is looked up.
        decodeProtectedHeader(token);
        ({ payload } = await jwtVerify(token, key, {
          algorithms,
          issuer: options.issuer,
          audience: options.audience,
          clockTolerance: options.clockSkewSec,
          requiredClaims: ["exp"],
        }));
      } catch (err) {
        return classify(jose, err);
      }
      return identityFrom(payload, rights, options.clockSkewSec);
    },
  };
}

/** Dev mode: every client is anonymous and gets the default rights when set, else every room. */
export function devAuthenticator(
  options: Pick<AuthOptions, "defaultRooms" | "defaultPublish"> = {},
): Authenticator {
  const defaults = defaultRights(options);
  const identity: Identity = {
    sub: undefined,
    rights: {
      join: defaults.join ?? ALL_RIGHTS.join,
      publish: defaults.publish ?? ALL_RIGHTS.publish,
    },
    expiresAt: undefined,
  };
  return { mode: "dev", authenticate: async () => ({ ok: true, identity }) };
}

function defaultRights(options: Pick<AuthOptions, "defaultRooms" | "defaultPublish">): {
  join: RoomPatterns | undefined;
  publish: RoomPatterns | undefined;
} {
  const compile = (name: string, list: readonly string[] | undefined) => {
    if (list === undefined) return undefined;
    const parsed = parsePatterns(list);
    if (typeof parsed === "string") {
      throw configError([`invalid environment variable ${name}: ${parsed}`]);
    }
    return parsed;
  };
  return {
    join: compile("AUTH_DEFAULT_ROOMS", options.defaultRooms),
    publish: compile("AUTH_DEFAULT_PUBLISH", options.defaultPublish),
  };
}

async function loadJwks(jose: Jose, url: string, options: AuthOptions, logger: Logger) {
  const jwks = jose.createRemoteJWKSet(new URL(url), {
    timeoutDuration: options.jwksTimeoutMs ?? 5000,
    cooldownDuration: options.jwksCooldownMs ?? 30_000,
    cacheMaxAge: options.jwksCacheMaxAgeMs ?? 600_000,
  });
  const problem = (what: string) =>
    configError([`invalid environment variable AUTH_JWKS_URL: ${what}`]);
  try {
    await jwks.reload();
  } catch (err) {
    throw problem(`could not fetch the key set (${describe(jose, err)})`);
  }
  const keys = jwks.jwks()?.keys ?? [];
  const usable = keys.filter(
    (jwk) =>
      jwk.use !== "enc" &&
      ((jwk.kty === "RSA" && (jwk.alg === undefined || jwk.alg === "RS256")) ||
        (jwk.kty === "EC" &&
          jwk.crv === "P-256" &&
          (jwk.alg === undefined || jwk.alg === "ES256"))),
  );
  if (usable.length === 0) {
    throw problem(`the key set holds no RS256 or ES256 signing key (${keys.length} keys)`);
  }
  logger.info({ keys: usable.length, kids: usable.map((jwk) => jwk.kid ?? null) }, "JWKS loaded");
  return jwks;
}

function identityFrom(payload: JWTPayload, defaults: Rights, clockSkewSec: number): AuthResult {
  const sub = payload.sub;
  if (sub !== undefined && !isValidRoomName(`user:${sub}`)) {
    return refuse("invalid_token", "sub must be 1-195 chars of [A-Za-z0-9:_.@/-]");
  }
  let join = defaults.join;
  if (payload.rooms !== undefined) {
    const parsed = parsePatterns(payload.rooms);
    if (typeof parsed === "string") return refuse("invalid_token", `rooms claim ${parsed}`);
    join = parsed;
  }
  let publish = defaults.publish;
  if (payload.publish !== undefined) {
    const parsed = parsePatterns(payload.publish);
    if (typeof parsed === "string") return refuse("invalid_token", `publish claim ${parsed}`);
    publish = parsed;
  }
  const expiresAt =
    typeof payload.exp === "number" ? (payload.exp + clockSkewSec) * 1000 : undefined;
  return { ok: true, identity: { sub, rights: { join, publish }, expiresAt } };
}

function classify({ errors }: Jose, err: unknown): AuthResult {
  if (err instanceof KeySourceError) return refuse("auth_unavailable", err.message);
  if (err instanceof errors.JWTExpired) return refuse("token_expired", err.message);
  if (err instanceof errors.JWTClaimValidationFailed && err.claim === "nbf") {
    return refuse("token_not_yet_valid", err.message);
  }
  return refuse("invalid_token", describe({ errors }, err));
}

function refuse(code: AuthFailureCode, detail: string): AuthResult {
  return { ok: false, code, detail };
}

function describe({ errors }: Pick<Jose, "errors">, err: unknown): string {
  if (err instanceof errors.JOSEError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}
