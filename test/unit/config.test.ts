import { describe, expect, it } from "vitest";
import { SwitchboardError } from "../../core/errors.js";
import { loadConfig } from "../../services/gateway/config.js";

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(SwitchboardError);
    expect((err as SwitchboardError).code).toBe("SWB_ERR_INVALID_CONFIG");
    const problems = (err as SwitchboardError).details?.problems as string[];
    expect((err as SwitchboardError).message).toBe(problems.join("\n"));
    return problems;
  }
  throw new Error("expected loadConfig to reject the environment");
}

describe("gateway configuration from the environment", () => {
  it("starts with sane defaults when nothing is set", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 3000,
      host: "0.0.0.0",
      backplane: "memory",
      logLevel: "info",
      ingest: true,
      publishApiKeys: [],
      corsOrigins: [],
    });
    // Random: clients see it in whoami, and host name and pid are not theirs to know.
    expect(config.gatewayId).toMatch(/^gw-[0-9a-f]{8}$/);
    expect(loadConfig({}).gatewayId).not.toBe(config.gatewayId);
    expect(config.workers).toBeGreaterThanOrEqual(2);
  });

  it("treats empty variables as unset", () => {
    expect(loadConfig({ PORT: "", BACKPLANE: "" }).port).toBe(3000);
  });

  it.each(["AUTH_JWT_SECRET", "AUTH_JWKS_URL", "METRICS_TOKEN"])(
    "refuses a blank %s instead of running without that protection",
    (name) => {
      for (const blank of ["", "  "]) {
        const problems = problemsOf({ [name]: blank });
        expect(problems).toEqual([
          expect.stringContaining(`invalid environment variable ${name}: is set but empty`),
        ]);
      }
    },
  );

  it.each([
    [{ PORT: "abc" }, "PORT", "whole number"],
    [{ PORT: "70000" }, "PORT", "at most 65535"],
    [{ BACKPLANE: "kafka" }, "BACKPLANE", "one of memory, cluster"],
    [{ LOG_LEVEL: "loud" }, "LOG_LEVEL", "one of fatal"],
    [{ REDIS_URL: "http://x" }, "REDIS_URL", "redis://"],
    [{ AMQP_URL: "not a url" }, "AMQP_URL", "amqp://"],
    [{ BACKPLANE: "redis" }, "REDIS_URL", "required when BACKPLANE=redis"],
    [{ BACKPLANE: "redis-streams" }, "REDIS_URL", "required when BACKPLANE=redis-streams"],
    [{ BACKPLANE: "amqp" }, "AMQP_URL", "required when BACKPLANE=amqp"],
    [{ GATEWAY_ID: "has space" }, "GATEWAY_ID", "[A-Za-z0-9:_.@/-]"],
    [{ MAX_PAYLOAD_BYTES: "10" }, "MAX_PAYLOAD_BYTES", "at least 1024"],
    [{ WORKERS: "0" }, "WORKERS", "at least 1"],
    [{ INGEST: "maybe" }, "INGEST", "on or off"],
    [{ SHUTDOWN_TIMEOUT_MS: "-5" }, "SHUTDOWN_TIMEOUT_MS", "whole number"],
    [
      { HEARTBEAT_INTERVAL_MS: "5000", HEARTBEAT_TIMEOUT_MS: "1000" },
      "HEARTBEAT_TIMEOUT_MS",
      "greater than",
    ],
    [
      { RATE_LIMIT_PER_SEC: "50", RATE_LIMIT_BURST: "10" },
      "RATE_LIMIT_BURST",
      "at least RATE_LIMIT_PER_SEC",
    ],
    [{ AUTH_JWT_SECRET: "short" }, "AUTH_JWT_SECRET", "at least 32"],
    [{ CORS_ORIGINS: "notaurl" }, "CORS_ORIGINS", "scheme://host[:port]"],
    [{ CORS_ORIGINS: "https://a.example,https://b.example/path" }, "CORS_ORIGINS", "no path"],
    [{ CORS_ORIGINS: "https://a.example/" }, "CORS_ORIGINS", "trailing slash"],
    [{ CORS_ORIGINS: "ftp://a.example" }, "CORS_ORIGINS", "scheme://host[:port]"],
    [{ TRUSTED_PROXIES: "10.0.0.0/33" }, "TRUSTED_PROXIES", "CIDR"],
    [{ TRUSTED_PROXIES: "proxy.local" }, "TRUSTED_PROXIES", "IP addresses"],
    [
      { TLS_CERT_FILE: "/nonexistent/cert.pem", TLS_KEY_FILE: "/etc/hostname" },
      "TLS_CERT_FILE",
      "readable file",
    ],
    [{ TLS_CERT_FILE: "/etc/hostname" }, "TLS_KEY_FILE", "set both or neither"],
    [{ METRICS_TOKEN: "short" }, "METRICS_TOKEN", "at least 16"],
    [{ HOST: "not_a_host!" }, "HOST", "an IP address or a host name"],
    [{ HOST: "http://0.0.0.0" }, "HOST", "an IP address or a host name"],
    [
      { PUBLISH_API_KEYS: "a-long-enough-key-1,abc" },
      "PUBLISH_API_KEYS",
      "each key must be at least 16 characters",
    ],
    [
      { AUTH_JWT_SECRET: "CHANGE_ME-a-random-string-of-at-least-32-characters" },
      "AUTH_JWT_SECRET",
      "sample placeholder",
    ],
    [
      { PUBLISH_API_KEYS: "real-key-0123456789,dev-key-change-me-0123" },
      "PUBLISH_API_KEYS",
      "sample placeholder",
    ],
    [{ METRICS_TOKEN: "change_me_metrics_token" }, "METRICS_TOKEN", "sample placeholder"],
    [{ AUTH_DEFAULT_ROOMS: "chat:*,a*b" }, "AUTH_DEFAULT_ROOMS", "optionally ending in one *"],
    [{ AUTH_DEFAULT_PUBLISH: "no spaces" }, "AUTH_DEFAULT_PUBLISH", "room names"],
    [{ AUTH_CLOCK_SKEW_SEC: "3600" }, "AUTH_CLOCK_SKEW_SEC", "at most 600"],
    [{ AUTH_JWT_ISSUER: "https://idp" }, "AUTH_JWT_ISSUER", "no effect without AUTH_JWT_SECRET"],
    [{ AUTH_JWT_AUDIENCE: "api" }, "AUTH_JWT_AUDIENCE", "no effect without AUTH_JWT_SECRET"],
  ])("rejects %o naming %s", (env, name, fragment) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`invalid environment variable ${name}:`);
    expect(problems[0]).toContain(fragment);
  });

  it.each(["0.0.0.0", "127.0.0.1", "::", "::1", "localhost", "gateway-0.internal"])(
    "listens on HOST %s",
    (host) => {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    },
  );

  it("reports every bad variable, one line each", () => {
    const problems = problemsOf({ PORT: "x", LOG_LEVEL: "y" });
    expect(problems.map((line) => line.split(":")[0])).toEqual([
      "invalid environment variable PORT",
      "invalid environment variable LOG_LEVEL",
    ]);
  });

  it("never prints secrets it rejects", () => {
    const [problem] = problemsOf({ AUTH_JWT_SECRET: "hunter2" });
    expect(problem).not.toContain("hunter2");
    const [urlProblem] = problemsOf({ AMQP_URL: "http://user:s3cret@host" });
    expect(urlProblem).not.toContain("s3cret");
  });

  it("parses lists and flags", () => {
    const config = loadConfig({
      CORS_ORIGINS: "https://a.example, http://127.0.0.1:3000,*",
      PUBLISH_API_KEYS: "key-one-0123456789, key-two-0123456789",
      INGEST: "off",
      AMQP_ROOM_ROUTING: "false",
    });
    expect(config.corsOrigins).toEqual(["https://a.example", "http://127.0.0.1:3000", "*"]);
    expect(config.publishApiKeys).toEqual(["key-one-0123456789", "key-two-0123456789"]);
    expect(config.ingest).toBe(false);
    expect(config.amqpRoomRouting).toBe(false);
  });
});
