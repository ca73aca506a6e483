import { randomBytes } from "node:crypto";
import { describe, expect, it, onTestFinished } from "vitest";
import { haproxyBinary, startBalancer } from "../deploy/haproxy.js";
import { startDeployment } from "../support/harness/deployment.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { RUN_TIMEOUT_MS, runLoadtest } from "./loadtest-helpers.js";

/**
 * Sizing the compose cluster as docs/LOADTEST.md says: one URL, the balancer's, in front of three
 * gateways on the Redis backplane (deploy/haproxy/haproxy.cfg as compose runs it, without Docker).
 */
describe("switchboard loadtest through the compose load balancer", () => {
  it(
    "spreads long-polling clients over the three gateways behind one URL and loses nothing",
    async () => {
      haproxyBinary(); // fails with the install hint when haproxy is missing
      const redis = await startPrivateRedis();
      onTestFinished(redis.stop);
      const deployment = await startDeployment({
        topology: "processes",
        count: 3,
        name: `lt-${randomBytes(3).toString("hex")}`,
        env: { BACKPLANE: "redis", REDIS_URL: redis.url, INGEST: "off" },
      });
      onTestFinished(() => deployment.close());
      const balancer = await startBalancer(deployment.nodes.map((node) => new URL(node.url).host));
      onTestFinished(() => balancer.stop());
      const { code, report, run } = await runLoadtest([
        "--url",
        balancer.url,
        "--transport",
        "polling",
        ...["--clients", "24", "--rooms", "4", "--rate", "20", "--duration", "2s"],
      ]);
      expect(code, run.stderr()).toBe(0);
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
      // leastconn hands the clients out over all three; the cookie keeps each on its gateway.
      expect(Object.keys(report.gateways).sort()).toEqual(
        deployment.nodes.map((node) => node.gatewayId).sort(),
      );
      expect(report.connections.disconnects).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );
});
