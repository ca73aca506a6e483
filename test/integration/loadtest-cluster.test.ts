import { randomBytes } from "node:crypto";
import { describe, expect, it, onTestFinished } from "vitest";
import { startDeployment } from "../support/harness/deployment.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { RUN_TIMEOUT_MS, runLoadtest, SMALL_RUN, startLoadtest } from "./loadtest-helpers.js";

const name = () => `lt-${randomBytes(3).toString("hex")}`;

describe("switchboard loadtest against the embedded cluster", () => {
  it(
    "delivers every message across two node:cluster workers behind one port (installed entry point)",
    async () => {
      const deployment = await startDeployment({
        topology: "cluster",
        count: 2,
        name: name(),
        env: {},
      });
      onTestFinished(() => deployment.close());
      const url = deployment.nodes[0]!.url;
      const { code, report, run } = await runLoadtest(["--url", url, ...SMALL_RUN], {
        built: true,
      });
      expect(code, run.stderr()).toBe(0);
      expect(report.sent).toBeGreaterThan(0);
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
      // Every client says which worker serves it; all are workers of this deployment.
      const workers = deployment.nodes.map((node) => node.gatewayId);
      expect(Object.keys(report.gateways).every((id) => workers.includes(id))).toBe(true);
      expect(Object.values(report.gateways).reduce((a, b) => a + b, 0)).toBe(16);
    },
    RUN_TIMEOUT_MS,
  );
});

describe("switchboard loadtest as a CI gate", () => {
  it(
    "exits non-zero under --max-loss 0 when a gateway is killed mid-run",
    async () => {
      const redis = await startPrivateRedis();
      onTestFinished(redis.stop);
      const deployment = await startDeployment({
        topology: "processes",
        count: 2,
        name: name(),
        env: { BACKPLANE: "redis", REDIS_URL: redis.url, INGEST: "off" },
      });
      onTestFinished(() => deployment.close());
      const run = await startLoadtest([
        "--url",
        deployment.nodes.map((node) => node.url).join(","),
        "--clients",
        "16",
        "--rooms",
        "4",
        "--rate",
        "20",
        "--duration",
        "8s",
        "--drain",
        "2s",
        "--max-loss",
        "0",
      ]);
      await run.waitForOutput("phase=publishing");
      deployment.nodes[1]!.signal("SIGKILL");
      const code = await run.exited;
      const report = await run.report();
      expect(code, run.stderr()).toBe(1);
      expect(report.lost).toBeGreaterThan(0);
      expect(report.connections.disconnects).toBeGreaterThan(0);
      expect(report.thresholds.failures.join()).toContain("--max-loss 0");
      expect(run.stdout()).toContain("FAIL");
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "refuses a bad command line with exit code 64, naming the flag",
    async () => {
      const run = await startLoadtest(["--rate", "fast"]);
      expect(await run.exited).toBe(64);
      expect(run.stderr()).toContain("--rate must be a number");
    },
    RUN_TIMEOUT_MS,
  );
});
