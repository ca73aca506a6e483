import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";

export const LOADTEST_USAGE = `usage: switchboard loadtest --url URL[,URL…] [options]

Connects N Socket.IO clients to the gateways, puts them in R rooms, publishes M messages per
second to those rooms for a while, and reports what arrived, how late, and what was lost.

target
  --url URL[,URL…]        gateway or load balancer URLs; clients are spread over them
                          (default http://localhost:3000)
  --transport T           websocket (default) or polling (long-polling only)
  --token-secret S        sign an HS256 token per client (AUTH_JWT_SECRET of the gateways)
  --token-issuer ISS      with --token-secret: the tokens' iss (the gateways' AUTH_JWT_ISSUER)
  --token-audience AUD    with --token-secret: the tokens' aud (AUTH_JWT_AUDIENCE)
  --token T               one given token for every client
  --local-addresses A,B   source addresses to connect from (default: 127.0.0.x as needed when
                          the target is loopback and N exceeds one address's ephemeral ports)
load
  --clients N             subscribed clients (default 100)
  --rooms R               rooms; client i joins room i mod R (default 10)
  --rate M                messages per second, all publishers together; 0 only connects
                          (default 100)
  --duration D            how long to publish: 500ms, 30s, 2m (default 30s)
  --payload BYTES         size of each message's data (default 256)
  --ramp C/s              new connections per second, at most (default 500/s)
  --publishers P          how many of the clients publish (--publish-via client; default one
                          per 10 msgs/s, so that each stays under the gateways' rate limit)
  --publish-via V         client (default): clients publish through the client protocol;
                          amqp, redis, http: the durable publish paths, from the generator
  --api-key K             a PUBLISH_API_KEYS key, for --publish-via http
  --amqp-url URL          for --publish-via amqp (default amqp://localhost)
  --amqp-queue NAME       the gateways' INGEST_AMQP_QUEUE (default switchboard.publish)
  --redis-url URL         for --publish-via redis (default redis://localhost:6379)
  --redis-stream NAME     the gateways' INGEST_REDIS_STREAM (default switchboard:publish)
  --scenario S            steady (default) or connect-storm: every client connects, asks
                          whoami, disconnects and connects again until --duration ends
run
  --workers W             generator processes (default: one per core minus one, at least 1)
  --drain D               after the last publish, wait at most D for late messages
                          (default 10s)
  --label TEXT            a name for this run in the reports (e.g. the backplane)
report
  --json FILE             write the report as JSON
  --html FILE             write the report as one HTML page with charts (opens offline)
  --max-loss N|P%         fail (exit 1) when more messages than this were lost (a count, or a
                          percentage of the expected deliveries)
  --max-p99 MS            fail (exit 1) when the p99 latency is above MS (connect-storm: the
                          p99 connect time)

exit codes: 0 done within the limits, 1 a --max-loss/--max-p99 limit was exceeded (or, with
  either set, nothing was delivered), 64 bad usage, 69 no client could connect, 70 a generator
  worker failed, 130 interrupted (Ctrl-C; the report is written)
`;

export type Transport = "websocket" | "polling";
export type PublishVia = "client" | "amqp" | "redis" | "http";
export type Scenario = "steady" | "connect-storm";

export interface LossLimit {
  /** `count`: lost messages; `percent`: lost / expected × 100. */
  kind: "count" | "percent";
  value: number;
}

export interface LoadtestOptions {
  urls: string[];
  transport: Transport;
  tokenSecret: string | undefined;
  token: string | undefined;
  tokenIssuer: string | undefined;
  tokenAudience: string | undefined;
  localAddresses: string[] | undefined;
  clients: number;
  rooms: number;
  /** Messages per second, all publishers together. */
  rate: number;
  durationMs: number;
  payloadBytes: number;
  /** New connections per second, all workers together. */
  rampPerSec: number;
  publishers: number;
  publishVia: PublishVia;
  apiKey: string | undefined;
  amqpUrl: string;
  amqpQueue: string | undefined;
  redisUrl: string;
  redisStream: string | undefined;
  scenario: Scenario;
  workers: number;
  drainMs: number;
  label: string | undefined;
  jsonFile: string | undefined;
  htmlFile: string | undefined;
  maxLoss: LossLimit | undefined;
  maxP99Ms: number | undefined;
}

/** A bad command line (code SWB_ERR_USAGE, exit 64); the message names the flag. */
const usage = (message: string) => new SwitchboardError(ErrorCode.USAGE, message);

const STEADY_ONLY = ["rooms", "rate", "payload", "publishers", "publish-via", "max-loss"] as const;

export function parseLoadtestArgs(argv: string[]): LoadtestOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    // parseArgs throws TypeErrors for unknown flags and missing values.
    throw usage((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (positionals.length > 0) {
    throw usage(`unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const scenario = oneOf("scenario", v.scenario ?? "steady", ["steady", "connect-storm"] as const);
  if (scenario === "connect-storm") {
    for (const flag of STEADY_ONLY) {
      if (v[flag] !== undefined) throw usage(`--${flag} does not apply to connect-storm`);
    }
  }
  const urls = (v.url ?? "http://localhost:3000").split(",").map((u) => u.trim());
  for (const url of urls) checkUrl("--url", url, ["http:", "https:", "ws:", "wss:"]);

  const clients = integer("clients", v.clients, 100, 1, 1_000_000);
  const rooms = integer("rooms", v.rooms, Math.min(10, clients), 1, clients);
  const rate = number("rate", v.rate, 100, 0, 1_000_000);
  const publishVia = oneOf("publish-via", v["publish-via"] ?? "client", [
    "client",
    "amqp",
    "redis",
    "http",
  ] as const);
  if (publishVia !== "client" && v.publishers !== undefined) {
    throw usage("--publishers applies to --publish-via client only");
  }
  const publishers = integer(
    "publishers",
    v.publishers,
    Math.min(clients, Math.max(1, Math.ceil(rate / 10))),
    1,
    clients,
  );
  if (publishVia === "http" && !v["api-key"]) {
    throw usage("--api-key is required with --publish-via http");
  }
  if (v["api-key"] !== undefined && publishVia !== "http") {
    throw usage("--api-key applies to --publish-via http only");
  }
  for (const [flag, via] of [
    ["amqp-url", "amqp"],
    ["amqp-queue", "amqp"],
    ["redis-url", "redis"],
    ["redis-stream", "redis"],
  ] as const) {
    if (v[flag] !== undefined && publishVia !== via) {
      throw usage(`--${flag} applies to --publish-via ${via} only`);
    }
  }
  const amqpUrl = v["amqp-url"] ?? "amqp://localhost";
  checkUrl("--amqp-url", amqpUrl, ["amqp:", "amqps:"]);
  const redisUrl = v["redis-url"] ?? "redis://localhost:6379";
  checkUrl("--redis-url", redisUrl, ["redis:", "rediss:"]);
  if (v["token-secret"] !== undefined && v.token !== undefined) {
    throw usage("give --token-secret or --token, not both");
  }
  if (v["token-secret"] !== undefined && v["token-secret"].length < 32) {
    throw usage("--token-secret must be at least 32 characters (the gateways' HS256 key)");
  }
  for (const flag of ["token-issuer", "token-audience"] as const) {
    if (v[flag] !== undefined && v["token-secret"] === undefined) {
      throw usage(`--${flag} applies to --token-secret only`);
    }
  }
  const localAddresses = v["local-addresses"]?.split(",").map((a) => a.trim());
  if (localAddresses?.some((a) => a.length === 0)) {
    throw usage("--local-addresses must be a comma-separated list of IP addresses");
  }
  const defaultWorkers = Math.max(1, availableParallelism() - 1);
  const workers = integer("workers", v.workers, Math.min(defaultWorkers, clients), 1, 256);
  if (workers > clients) throw usage("--workers must be at most --clients");

  return {
    urls,
    transport: oneOf("transport", v.transport ?? "websocket", ["websocket", "polling"] as const),
    tokenSecret: v["token-secret"],
    token: v.token,
    tokenIssuer: v["token-issuer"],
    tokenAudience: v["token-audience"],
    localAddresses,
    clients,
    rooms,
    rate,
    durationMs: duration("duration", v.duration, 30_000),
    payloadBytes: integer("payload", v.payload, 256, 0, 1024 * 1024),
    rampPerSec: ramp(v.ramp),
    publishers,
    publishVia,
    apiKey: v["api-key"],
    amqpUrl,
    amqpQueue: v["amqp-queue"],
    redisUrl,
    redisStream: v["redis-stream"],
    scenario,
    workers,
    drainMs: duration("drain", v.drain, 10_000),
    label: v.label,
    jsonFile: v.json,
    htmlFile: v.html,
    maxLoss: v["max-loss"] === undefined ? undefined : lossLimit(v["max-loss"]),
    maxP99Ms: v["max-p99"] === undefined ? undefined : number("max-p99", v["max-p99"], 0, 0, 1e9),
  };
}

function parse(argv: string[]) {
  const text = { type: "string" } as const;
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      url: text,
      transport: text,
      "token-secret": text,
      token: text,
      "token-issuer": text,
      "token-audience": text,
      "local-addresses": text,
      clients: text,
      rooms: text,
      rate: text,
      duration: text,
      payload: text,
      ramp: text,
      publishers: text,
      "publish-via": text,
      "api-key": text,
      "amqp-url": text,
      "amqp-queue": text,
      "redis-url": text,
      "redis-stream": text,
      scenario: text,
      workers: text,
      drain: text,
      label: text,
      json: text,
      html: text,
      "max-loss": text,
      "max-p99": text,
    },
  });
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw usage(`--${flag} must be one of ${allowed.join(", ")} (got ${JSON.stringify(value)})`);
}

/** A numeric flag: its name, its text (absent: `fallback`), and the range it must fall in. */
type NumericFlag = [
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
];
const integer = (...flag: NumericFlag): number => numeric(true, ...flag);
const number = (...flag: NumericFlag): number => numeric(false, ...flag);

/** A flag's number (`whole`: digits only), `fallback` when absent, refused outside min..max. */
function numeric(
  whole: boolean,
  flag: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  const valid = whole ? /^\d+$/.test(value.trim()) : value.trim() !== "" && Number.isFinite(n);
  if (!valid) {
    throw usage(
      `--${flag} must be ${whole ? "a whole number" : "a number"} (got ${JSON.stringify(value)})`,
    );
  }
  return bounded(flag, n, min, max);
}

function bounded(flag: string, n: number, min: number, max: number): number {
  if (n < min || n > max) throw usage(`--${flag} must be from ${min} to ${max} (got ${n})`);
  return n;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `500ms`, `30s`, `2m`, `1h`, or a plain number of seconds. */
export function duration(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) {
    throw usage(`--${flag} must be a duration like 500ms, 30s, 2m (got ${JSON.stringify(value)})`);
  }
  const ms = Math.round(Number(match[1]) * (UNITS[match[2] ?? "s"] ?? 1000));
  if (ms <= 0 || ms > 24 * 3_600_000) {
    throw usage(`--${flag} must be more than 0 and at most 24h (got ${value})`);
  }
  return ms;
}

/** `500/s` or `500`: connections per second. */
function ramp(value: string | undefined): number {
  if (value === undefined) return 500;
  const match = /^(\d+(?:\.\d+)?)(\/s)?$/.exec(value.trim());
  const n = match ? Number(match[1]) : Number.NaN;
  if (!match || n <= 0 || n > 1_000_000) {
    throw usage(`--ramp must be connections per second, like 500/s (got ${JSON.stringify(value)})`);
  }
  return n;
}

function lossLimit(value: string): LossLimit {
  const match = /^(\d+(?:\.\d+)?)(%)?$/.exec(value.trim());
  if (!match) {
    throw usage(
      `--max-loss must be a count (0, 10) or a percentage (0.1%) (got ${JSON.stringify(value)})`,
    );
  }
  const n = Number(match[1]);
  if (match[2]) {
    if (n > 100) throw usage(`--max-loss must be at most 100% (got ${value})`);
    return { kind: "percent", value: n };
  }
  if (!Number.isInteger(n)) {
    throw usage(`--max-loss as a count must be a whole number (got ${value})`);
  }
  return { kind: "count", value: n };
}

function checkUrl(flag: string, value: string, protocols: string[]): void {
  let protocol: string;
  try {
    protocol = new URL(value).protocol;
  } catch {
    throw usage(`${flag} must be a URL (got ${JSON.stringify(value)})`);
  }
  if (!protocols.includes(protocol)) {
    throw usage(
      `${flag} must start with ${protocols.map((p) => `${p}//`).join(" or ")} (got ${JSON.stringify(value)})`,
    );
  }
}
