import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Deployment, startDeployment } from "../support/harness/deployment.js";
import { RUN_TIMEOUT_MS, runLoadtest, startLoadtest } from "./loadtest-helpers.js";

const SECRET = `loadtest-secret-${randomBytes(16).toString("hex")}`;
const ISSUER = "https://issuer.test";
const AUDIENCE = "switchboard-loadtest";
/** What a user passes to match the gateways' AUTH_JWT_SECRET / _ISSUER / _AUDIENCE. */
const TOKEN = ["--token-secret", SECRET, "--token-issuer", ISSUER, "--token-audience", AUDIENCE];

/** One gateway with authentication on: every client needs a token carrying its room rights. */
describe("switchboard loadtest with authentication, other transports and scenarios", () => {
  let deployment: Deployment;
  let url: string;

  beforeAll(async () => {
    deployment = await startDeployment({
      topology: "processes",
      count: 1,
      name: `lt-${randomBytes(3).toString("hex")}`,
      env: {
        BACKPLANE: "memory",
        AUTH_JWT_SECRET: SECRET,
        AUTH_JWT_ISSUER: ISSUER,
        AUTH_JWT_AUDIENCE: AUDIENCE,
        INGEST: "off",
      },
    });
    url = deployment.nodes[0]!.url;
  }, RUN_TIMEOUT_MS);
  afterAll(() => deployment.close());

  const small = ["--clients", "8", "--rooms", "2", "--rate", "10", "--duration", "2s"];

  it(
    "signs each client's token with --token-secret (issuer, audience), and every message is delivered",
    async () => {
      const { code, report, run } = await runLoadtest(["--url", url, ...small, ...TOKEN]);
      expect(code, run.stderr()).toBe(0);
      expect(report.target.auth).toBe("token-secret");
      expect(report.connections.members).toBe(8);
      expect(report.sent).toBeGreaterThan(0);
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "reports the gateway's refusal by kind and exits 69 when no client may connect",
    async () => {
      const run = await startLoadtest([
        "--url",
        url,
        ...small,
        ...TOKEN.slice(2),
        "--token-secret",
        "x".repeat(32),
      ]);
      expect(await run.exited, run.stderr()).toBe(69);
      const report = await run.report();
      expect(report.connections.members).toBe(0);
      expect(report.errors["connect:invalid token"]).toBe(8);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "runs over long-polling as well as WebSocket",
    async () => {
      const { code, report, run } = await runLoadtest([
        "--url",
        url,
        ...small,
        "--transport",
        "polling",
        ...TOKEN,
      ]);
      expect(code, run.stderr()).toBe(0);
      expect(report.target.transport).toBe("polling");
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "connect-storm: clients connect and reconnect, and the report counts accepted connections",
    async () => {
      const { code, report, run } = await runLoadtest([
        "--url",
        url,
        "--scenario",
        "connect-storm",
        "--clients",
        "5",
        "--duration",
        "3s",
        ...TOKEN,
      ]);
      expect(code, run.stderr()).toBe(0);
      expect(report.scenario).toBe("connect-storm");
      // More connections than clients: each one reconnected at least once.
      expect(report.connections.accepted).toBeGreaterThan(5);
      expect(report.connections.acceptedPerSec).toBeGreaterThan(0);
      expect(report.gateways).toEqual({
        [deployment.nodes[0]!.gatewayId]: report.connections.accepted,
      });
      expect(report.connectMs.count).toBe(report.connections.accepted);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "connects from the --local-addresses given; Ctrl-C (SIGINT) writes the report so far, exit 130",
    async () => {
      const run = await startLoadtest([
        "--url",
        url,
        ...["--clients", "8", "--rooms", "2", "--rate", "10"],
        ...["--duration", "60s"],
        ...["--local-addresses", "127.0.0.2,127.0.0.3"],
        ...TOKEN,
      ]);
      await run.waitForOutput("phase=publishing");
      // The gateway sees each client's source address.
      const sockets = await deployment.nodes[0]!.control("fetchSockets", {});
      const addresses = new Set(sockets.map((socket) => socket.handshake.address));
      expect([...addresses].sort()).toEqual(["127.0.0.2", "127.0.0.3"]);
      run.signal("SIGINT");
      expect(await run.exited, run.stderr()).toBe(130);
      const report = await run.report();
      expect(report.interrupted).toBe(true);
      expect(report.target.durationMs).toBe(60_000);
      expect(run.stdout()).toContain("interrupted");
    },
    RUN_TIMEOUT_MS,
  );
});
