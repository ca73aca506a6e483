import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type AddressInfo, isIP, type Server as NetServer } from "node:net";
import { availableParallelism } from "node:os";
import * as z from "zod";
import { BACKPLANES } from "../../adapters/backplane.js";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { NAMESPACE_PATTERN, PUBLISH_DEFAULTS } from "../../core/publish-command.js";
import { redactSetting } from "../../core/redact.js";
import { isAddressOrBlock } from "./client-address.js";
import { isValidPattern, MAX_PATTERNS, PATTERN_RULE } from "./rights.js";

/**
 * The gateway's whole configuration, read from environment variables only.
 * Nothing else in the code base reads `process.env`: pass a `Config` down.
 *
 * One source: each variable is one entry of `schema` below (name, type, bounds, default); the
 * `Config` type and its field names are derived from it (`REDIS_URL` -> `config.redisUrl`).
 * Adding a variable is one line here plus one row in docs/OPERATIONS.md's table;
 * test/unit/config-docs.test.ts fails until both agree.
 */

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

const int = (min: number, max: number, fallback: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`))
    .default(fallback);

const url = (protocols: readonly string[]) =>
  z
    .string()
    .trim()
    .refine(
      (value) => {
        try {
          return protocols.includes(new URL(value).protocol);
        } catch {
          return false;
        }
      },
      `must be a URL starting with ${protocols.map((p) => `${p}//`).join(" or ")}`,
    )
    .optional();

const splitList = (value: string): string[] =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

const list = z.string().transform(splitList).default([]);

/** What a browser sends in `Origin`, which admission compares as a string. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === value;
  } catch {
    return false;
  }
}

/**
 * The sample secrets in docker-compose.yml and deploy/k8s/secret.yaml say CHANGE_ME: a gateway
 * started with one of them would trust a key anybody can read in this repository.
 */
const PLACEHOLDER = /change[-_ ]?me/i;
const PLACEHOLDER_RULE =
  "is the repository's sample placeholder (CHANGE_ME): set a secret of your own";
const secret = (minLength: number, rule: string) =>
  z
    .string()
    .min(minLength, rule)
    .refine((value) => !PLACEHOLDER.test(value), PLACEHOLDER_RULE);

const flag = (fallback: "on" | "off") =>
  z
    .enum(["on", "off", "true", "false", "1", "0"], { message: "must be on or off" })
    .transform((value) => value === "on" || value === "true" || value === "1")
    .default(fallback === "on");

/** A path to a file the gateway can read (at start). */
const file = z
  .string()
  .trim()
  .refine((path) => {
    try {
      readFileSync(path);
      return true;
    } catch {
      return false;
    }
  }, "must be a readable file")
  .optional();

/** Comma-separated room patterns (services/gateway/rights.ts); unset is not the same as empty. */
const patterns = z
  .string()
  .transform(splitList)
  .refine((items) => items.every(isValidPattern), PATTERN_RULE)
  .refine((items) => items.length <= MAX_PATTERNS, `must hold at most ${MAX_PATTERNS} patterns`)
  .optional();

/** As METRICS_TOKEN's: a key guessed publishes to every client. */
const MIN_PUBLISH_KEY_CHARS = 16;

const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/** An address to listen on: an IP address, or a host name Node resolves (`localhost`). */
function isListenHost(host: string): boolean {
  return isIP(host) !== 0 || HOST_NAME.test(host);
}

/**
 * Built when needed and dropped after: the schema is ≈ 1 MB of zod objects that a running gateway
 * never reads again (measured: heap after start, bench/heap-diff.ts's base snapshot).
 */
const buildSchema = () =>
  z
    .object({
      PORT: int(0, 65_535, 3000),
      HOST: z
        .string()
        .trim()
        .refine(
          isListenHost,
          "must be an IP address or a host name (0.0.0.0: every IPv4 interface)",
        )
        .default("0.0.0.0"),
      GATEWAY_ID: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9:_.@/-]{1,100}$/, "must be 1-100 chars of [A-Za-z0-9:_.@/-]")
        // Random by default: clients see it in `whoami`, and host name and pid are not theirs to know.
        .default(() => `gw-${randomBytes(4).toString("hex")}`),
      BACKPLANE: z
        .enum(BACKPLANES, { message: `must be one of ${BACKPLANES.join(", ")}` })
        .default("memory"),
      REDIS_URL: url(["redis:", "rediss:"]),
      /** REDIS_URL names one node of a Redis Cluster; the backplane discovers the others from it. */
      REDIS_CLUSTER: flag("off"),
      AMQP_URL: url(["amqp:", "amqps:"]),
      AMQP_EXCHANGE: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "must be 1-200 chars of [A-Za-z0-9_.:-]")
        .default("socket.io"),
      AMQP_ROOM_ROUTING: flag("on"),
      /** Namespaces clients may connect to and publish commands may name. */
      NAMESPACES: z
        .string()
        .transform((value) =>
          value
            .split(",")
            .map((item) => item.trim())
            .filter((item) => item.length > 0),
        )
        .refine(
          (items) => items.length > 0 && items.every((item) => NAMESPACE_PATTERN.test(item)),
          "must be namespaces like /,/chat: each / then up to 199 chars of [A-Za-z0-9:_.@/-]",
        )
        .refine((items) => items.length <= 100, "must hold at most 100 namespaces")
        .transform((items) => [...new Set(items)])
        .default(["/"]),
      /** Browser origins allowed to connect (both transports, the WebSocket upgrade included). */
      CORS_ORIGINS: list.refine(
        (items) => items.every((item) => item === "*" || isOrigin(item)),
        "must be * or origins as browsers send them: scheme://host[:port], no path or trailing slash (https://app.example.com)",
      ),
      /** Engine.IO connections one client address may hold; 0: no limit. */
      MAX_CONNECTIONS_PER_IP: int(0, 1_000_000, 0),
      /** Proxies whose X-Forwarded-For is believed: IP addresses or CIDR blocks. */
      TRUSTED_PROXIES: list.refine(
        (items) => items.every(isAddressOrBlock),
        "must be IP addresses or CIDR blocks (10.0.0.0/8, ::1)",
      ),
      /** Time a client has to send its request headers. */
      HTTP_HEADERS_TIMEOUT_MS: int(1000, 600_000, 10_000),
      /** Time a client has to send a whole request, body included. */
      HTTP_REQUEST_TIMEOUT_MS: int(1000, 3_600_000, 30_000),
      /** How long an idle keep-alive HTTP connection stays open. */
      HTTP_KEEP_ALIVE_TIMEOUT_MS: int(1000, 600_000, 5000),
      /** Time a new Engine.IO connection has to join a namespace before it is closed. */
      HANDSHAKE_TIMEOUT_MS: int(1000, 600_000, 10_000),
      /** Bearer token GET /metrics requires; unset: /metrics is open. */
      METRICS_TOKEN: secret(16, "must be at least 16 characters").optional(),
      /** PEM certificate chain and key: the gateway serves HTTPS and WSS. */
      TLS_CERT_FILE: file,
      TLS_KEY_FILE: file,
      /** PEM CA bundle: clients must present a certificate it signed (mutual TLS). */
      TLS_CA_FILE: file,
      LOG_LEVEL: z
        .enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(", ")}` })
        .default("info"),
      /** Largest Socket.IO packet a client may send; engine.io closes the connection above it. */
      MAX_PAYLOAD_BYTES: int(1024, 100 * 1024 * 1024, 64 * 1024),
      /** Largest `data` of one client `publish`, serialized as JSON. */
      MAX_PUBLISH_BYTES: int(16, 100 * 1024 * 1024, 16 * 1024),
      MAX_ROOMS_PER_SOCKET: int(1, 100_000, 100),
      /**
       * Bytes a gateway holds for one WebSocket client that does not read (unsent WebSocket
       * bytes and engine.io's write buffer); past it the client is disconnected. 0: no bound.
       */
      MAX_CLIENT_BUFFER_BYTES: int(0, 1024 * 1024 * 1024, 1024 * 1024).refine(
        (value) => value === 0 || value >= 64 * 1024,
        "must be 0 (no bound) or at least 65536",
      ),
      /** Sustained client events per second per socket (token bucket refill). */
      RATE_LIMIT_PER_SEC: int(1, 1_000_000, 20),
      /** Token bucket size: how many events a socket may send in a burst. */
      RATE_LIMIT_BURST: int(1, 1_000_000, 40),
      /** Protocol violations (bad payloads, rate limit hits, unknown events) before a socket is disconnected. */
      MAX_STRIKES: int(1, 1_000_000, 20),
      /** How long /readyz says 503 while the gateway still serves its clients, before it disconnects them. */
      SHUTDOWN_DRAIN_MS: int(0, 600_000, 1000),
      /** Hard bound on the whole shutdown; the process exits (code 1) when it is reached. */
      SHUTDOWN_TIMEOUT_MS: int(100, 600_000, 10_000),
      WORKERS: int(1, 1024, Math.max(2, availableParallelism())),
      HEARTBEAT_INTERVAL_MS: int(100, 600_000, 5000),
      HEARTBEAT_TIMEOUT_MS: int(200, 3_600_000, 10_000),
      REQUESTS_TIMEOUT_MS: int(100, 600_000, 5000),
      INGEST: flag("on"),
      /** RabbitMQ publish queue; its dead letters go to `<name>.dead`. */
      INGEST_AMQP_QUEUE: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "must be 1-200 chars of [A-Za-z0-9_.:-]")
        .default(PUBLISH_DEFAULTS.amqpQueue),
      /** Redis publish stream; its dead letters go to `<name>:dead`. */
      INGEST_REDIS_STREAM: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.:{}-]{1,200}$/, "must be 1-200 chars of [A-Za-z0-9_.:{}-]")
        .default(PUBLISH_DEFAULTS.redisStream),
      INGEST_REDIS_GROUP: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.:-]{1,200}$/, "must be 1-200 chars of [A-Za-z0-9_.:-]")
        .default(PUBLISH_DEFAULTS.redisGroup),
      /** Commands a gateway holds unacknowledged at once (AMQP prefetch, Redis read batch). */
      INGEST_PREFETCH: int(1, 10_000, 100),
      /** Deliveries of one valid command before it becomes a dead letter. */
      INGEST_MAX_ATTEMPTS: int(1, 1000, PUBLISH_DEFAULTS.maxAttempts),
      /** Redis: entries a consumer left unacknowledged this long are taken over by another. */
      INGEST_CLAIM_IDLE_MS: int(100, 3_600_000, 30_000),
      /** Largest publish command (queue, stream or HTTP body), as UTF-8 JSON. */
      MAX_COMMAND_BYTES: int(256, 100 * 1024 * 1024, PUBLISH_DEFAULTS.maxCommandBytes),
      PUBLISH_API_KEYS: list
        .refine(
          (keys) => keys.every((key) => key.length >= MIN_PUBLISH_KEY_CHARS),
          `each key must be at least ${MIN_PUBLISH_KEY_CHARS} characters (a key may publish to every client)`,
        )
        .refine((keys) => !keys.some((key) => PLACEHOLDER.test(key)), PLACEHOLDER_RULE),
      AUTH_JWT_SECRET: secret(32, "must be at least 32 characters (HS256 key)").optional(),
      AUTH_JWKS_URL: url(["https:", "http:"]),
      /** Required `iss` of client tokens. */
      AUTH_JWT_ISSUER: z.string().trim().min(1, "must not be empty").optional(),
      /** Required `aud` of client tokens (one of the token's audiences). */
      AUTH_JWT_AUDIENCE: z.string().trim().min(1, "must not be empty").optional(),
      /** Tolerance for `exp`/`nbf` of client tokens, in seconds. */
      AUTH_CLOCK_SKEW_SEC: int(0, 600, 30),
      AUTH_JWKS_TIMEOUT_MS: int(100, 60_000, 5000),
      /** After a key-set fetch, how long a token with an unknown key id does not trigger another. */
      AUTH_JWKS_COOLDOWN_MS: int(0, 3_600_000, 30_000),
      /** How long fetched keys are used before the key set is fetched again. */
      AUTH_JWKS_CACHE_MAX_AGE_MS: int(1000, 86_400_000, 600_000),
      /** Room patterns a client may join when its token has no `rooms` claim (dev mode: every client). */
      AUTH_DEFAULT_ROOMS: patterns,
      /** Room patterns a client may publish to when its token has no `publish` claim. */
      AUTH_DEFAULT_PUBLISH: patterns,
      /** Broker of a Flask-SocketIO / python-socketio app's message queue; unset: no Python bridge. */
      PYTHON_BRIDGE_URL: url(["amqp:", "amqps:", "redis:", "rediss:"]),
      /** The app's channel: Flask-SocketIO's default `flask-socketio`, python-socketio's `socketio`. */
      PYTHON_BRIDGE_CHANNEL: z
        .string()
        .trim()
        .regex(/^[A-Za-z0-9_.:@/-]{1,200}$/, "must be 1-200 chars of [A-Za-z0-9_.:@/-]")
        .default("flask-socketio"),
      /** `in`: deliver Python's emits; `both`: also publish Switchboard's broadcasts for Python servers. */
      PYTHON_BRIDGE_MODE: z.enum(["in", "both"], { message: "must be in or both" }).default("in"),
      /** JSON `data`: `args` (python-socketio >= 5.15.1, a list of arguments) or `single` (5.14.0-5.15.0). */
      PYTHON_BRIDGE_JSON_DATA: z
        .enum(["args", "single"], { message: "must be args or single" })
        .default("args"),
      /** Largest message the bridge reads from the channel; larger ones are counted and dropped. */
      PYTHON_BRIDGE_MAX_MESSAGE_BYTES: int(256, 100 * 1024 * 1024, 1024 * 1024),
    })
    .superRefine((env, ctx) => {
      if ((env.TLS_CERT_FILE === undefined) !== (env.TLS_KEY_FILE === undefined)) {
        ctx.addIssue({
          code: "custom",
          path: [env.TLS_CERT_FILE === undefined ? "TLS_CERT_FILE" : "TLS_KEY_FILE"],
          message: "is required with TLS_CERT_FILE and TLS_KEY_FILE: set both or neither",
        });
      }
      if (env.TLS_CA_FILE !== undefined && env.TLS_CERT_FILE === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["TLS_CA_FILE"],
          message:
            "needs TLS_CERT_FILE and TLS_KEY_FILE (client certificates are checked over TLS)",
        });
      }
      if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
        ctx.addIssue({
          code: "custom",
          path: ["HTTP_HEADERS_TIMEOUT_MS"],
          message: "must not be greater than HTTP_REQUEST_TIMEOUT_MS",
        });
      }
      if (env.BACKPLANE.startsWith("redis") && !env.REDIS_URL) {
        ctx.addIssue({
          code: "custom",
          path: ["REDIS_URL"],
          message: `is required when BACKPLANE=${env.BACKPLANE}`,
        });
      }
      if (env.BACKPLANE === "amqp" && !env.AMQP_URL) {
        ctx.addIssue({
          code: "custom",
          path: ["AMQP_URL"],
          message: "is required when BACKPLANE=amqp",
        });
      }
      if (env.HEARTBEAT_TIMEOUT_MS <= env.HEARTBEAT_INTERVAL_MS) {
        ctx.addIssue({
          code: "custom",
          path: ["HEARTBEAT_TIMEOUT_MS"],
          message: "must be greater than HEARTBEAT_INTERVAL_MS",
        });
      }
      if (env.AUTH_JWT_SECRET === undefined && env.AUTH_JWKS_URL === undefined) {
        for (const name of ["AUTH_JWT_ISSUER", "AUTH_JWT_AUDIENCE"] as const) {
          if (env[name] === undefined) continue;
          ctx.addIssue({
            code: "custom",
            path: [name],
            message:
              "has no effect without AUTH_JWT_SECRET or AUTH_JWKS_URL (dev mode checks no token)",
          });
        }
      }
      if (env.PYTHON_BRIDGE_MODE === "both" && !env.PYTHON_BRIDGE_URL) {
        ctx.addIssue({
          code: "custom",
          path: ["PYTHON_BRIDGE_MODE"],
          message: "both needs PYTHON_BRIDGE_URL",
        });
      }
      if (env.RATE_LIMIT_BURST < env.RATE_LIMIT_PER_SEC) {
        ctx.addIssue({
          code: "custom",
          path: ["RATE_LIMIT_BURST"],
          message: "must be at least RATE_LIMIT_PER_SEC",
        });
      }
    });

type Schema = ReturnType<typeof buildSchema>;

/** Every variable the gateway reads, in the order of the schema (and of docs/OPERATIONS.md). */
export const VARIABLES = Object.keys(buildSchema().shape) as ReadonlyArray<keyof Schema["shape"]>;

/** `REDIS_URL` -> `redisUrl`: the field of `Config` that holds a variable. */
type FieldOf<Name extends string> = Name extends `${infer Head}_${infer Tail}`
  ? `${Lowercase<Head>}${Capitalize<FieldOf<Tail>>}`
  : Lowercase<Name>;

type Env = z.output<Schema>;

/** The parsed configuration: one field per variable, named by `fieldOf`. */
export type Config = { [Name in keyof Env as FieldOf<Name & string>]: Env[Name] };

export function fieldOf(name: string): string {
  return name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A variable's default as docs write it (flags as on/off), or undefined when it has none. */
export function defaultOf(name: (typeof VARIABLES)[number]): string | undefined {
  const parsed = buildSchema().shape[name].safeParse(undefined);
  if (!parsed.success || parsed.data === undefined) return undefined;
  const value: unknown = parsed.data;
  if (typeof value === "boolean") return value ? "on" : "off";
  if (Array.isArray(value)) return value.length === 0 ? undefined : value.join(",");
  return String(value);
}

const KNOWN: ReadonlySet<string> = new Set(VARIABLES);

/**
 * SWB_ERR_INVALID_CONFIG for a server that could not listen on HOST:PORT (the port taken, an
 * address not on this machine, a name that does not resolve): one line naming both, instead of
 * a stack trace.
 */
function listenError(err: unknown, host: string, port: number): SwitchboardError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const why =
    code === "EADDRINUSE"
      ? "the port is in use by another process"
      : code === "EADDRNOTAVAIL"
        ? "the address is not one of this machine's"
        : code === "EACCES"
          ? "not permitted (ports below 1024 need privileges)"
          : code === "ENOTFOUND" || code === "EAI_AGAIN"
            ? "the host name does not resolve"
            : ((err as Error | undefined)?.message ?? String(err));
  return configError([
    `cannot listen on HOST ${JSON.stringify(host)} PORT ${port}: ${why}${code ? ` (${code})` : ""}`,
  ]);
}

/**
 * Listens on HOST:PORT; resolves with the port bound (PORT=0: one the system chose), rejects with
 * `listenError`'s one line naming both.
 */
export function listenOn(server: NetServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const failed = (err: unknown) => reject(listenError(err, host, port));
    server.once("error", failed);
    server.listen(port, host, () => {
      server.off("error", failed);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** SWB_ERR_INVALID_CONFIG for `problems`, one line each, each naming its variable. */
export function configError(problems: string[]): SwitchboardError {
  return new SwitchboardError(ErrorCode.INVALID_CONFIG, problems.join("\n"), {
    details: { problems },
  });
}

/**
 * Reads and checks the environment. Throws SWB_ERR_INVALID_CONFIG with `details.problems`: one
 * line per bad variable, each naming it (secrets are never echoed).
 */
/** Settings whose blank value would silently disable a protection (auth, the metrics token). */
const FAIL_CLOSED_WHEN_BLANK: ReadonlySet<string> = new Set([
  "AUTH_JWT_SECRET",
  "AUTH_JWKS_URL",
  "METRICS_TOKEN",
]);

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings mean "unset", as docker compose and Kubernetes produce them for blank values,
  // except for the settings that turn protection on: a blank one is a mistake (a secret key
  // missing from a Secret), and reading it as unset would open the gateway, so it is refused.
  const input: Record<string, string> = {};
  const blank: string[] = [];
  for (const key of KNOWN) {
    const value = env[key];
    if (value === undefined) continue;
    if (value.trim() !== "") input[key] = value;
    else if (FAIL_CLOSED_WHEN_BLANK.has(key)) {
      blank.push(
        `invalid environment variable ${key}: is set but empty, which would turn its protection off; give it a value, or unset it`,
      );
    }
  }
  const result = buildSchema().safeParse(input);
  if (!result.success || blank.length > 0) {
    const issues = result.success ? [] : result.error.issues;
    const problems = blank.concat(
      issues.map((issue) => {
        const name = String(issue.path[0] ?? "environment");
        const got = input[name];
        const shown = got === undefined ? "" : ` (got ${JSON.stringify(redactSetting(name, got))})`;
        return `invalid environment variable ${name}: ${issue.message}${shown}`;
      }),
    );
    throw configError(problems);
  }
  const config: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(result.data)) config[fieldOf(name)] = value;
  return config as Config;
}
