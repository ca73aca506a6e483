import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl } from "../support/brokers.js";
import { type Deployment, startDeployment } from "../support/harness/deployment.js";
import { API_KEY, prepareBrokers, uniqueNames } from "../support/publish.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { RUN_TIMEOUT_MS, runLoadtest, SMALL_RUN } from "./loadtest-helpers.js";

/**
 * Two gateway processes on a private Redis (pub/sub backplane), each consuming the test's own
 * publish queue and stream and answering /v1/publish: every publish path of the load test.
 */
describe("switchboard loadtest against two gateways on the redis backplane", () => {
  const names = uniqueNames();
  const cleanups: Array<() => Promise<void>> = [];
  let deployment: Deployment;
  let urls: string;
  let privateRedisUrl: string;

  beforeAll(async () => {
    const redis = await startPrivateRedis();
    privateRedisUrl = redis.url;
    await prepareBrokers(names, (task) => void cleanups.unshift(task));
    deployment = await startDeployment({
      topology: "processes",
      count: 2,
      name: `lt-${randomBytes(3).toString("hex")}`,
      env: {
        BACKPLANE: "redis",
        REDIS_URL: redis.url,
        AMQP_URL: await amqpUrl(),
        INGEST_AMQP_QUEUE: names.queue,
        INGEST_REDIS_STREAM: names.stream,
        PUBLISH_API_KEYS: API_KEY,
      },
    });
    cleanups.unshift(() => deployment.close());
    cleanups.push(redis.stop);
    urls = deployment.nodes.map((node) => node.url).join(",");
  }, RUN_TIMEOUT_MS);
  afterAll(async () => {
    for (const task of cleanups) await task();
  }, RUN_TIMEOUT_MS);

  it(
    "delivers every message clients publish, loses none, and reports the contract's fields",
    async () => {
      const { code, report, run } = await runLoadtest(["--url", urls, ...SMALL_RUN]);
      expect(code, run.stderr()).toBe(0);
      for (const field of ["sent", "expected", "delivered", "lost", "duplicates"] as const) {
        expect(typeof report[field]).toBe("number");
      }
      for (const p of ["p50", "p90", "p99", "p999", "max"] as const) {
        expect(report.latencyMs[p]).toBeGreaterThanOrEqual(0);
      }
      expect(report.sent).toBeGreaterThan(0);
      expect(report.expected).toBeGreaterThan(0);
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
      expect(report.duplicates).toBe(0);
      expect(report.errors).toEqual({});
      expect(report.connections.members).toBe(16);
      // Clients alternate between the two URLs: each gateway served half, as whoami says.
      expect(report.gateways).toEqual(
        Object.fromEntries(deployment.nodes.map((node) => [node.gatewayId, 8])),
      );
      expect(report.latencyMs.max).toBeGreaterThan(0);
      expect(run.stdout()).toContain("lost 0");
    },
    RUN_TIMEOUT_MS,
  );

  it.each([
    ["amqp", async () => ["--amqp-url", await amqpUrl(), "--amqp-queue", names.queue]],
    ["redis", async () => ["--redis-url", privateRedisUrl, "--redis-stream", names.stream]],
    ["http", async () => ["--api-key", API_KEY]],
  ])(
    "delivers every message published --via %s",
    async (via, extra) => {
      const args = await extra();
      const { code, report, run } = await runLoadtest([
        "--url",
        urls,
        ...SMALL_RUN,
        "--publish-via",
        via,
        ...args,
      ]);
      expect(code, run.stderr()).toBe(0);
      expect(report.target.publishVia).toBe(via);
      expect(report.sent).toBeGreaterThan(0);
      expect(report.delivered).toBe(report.expected);
      expect(report.lost).toBe(0);
    },
    RUN_TIMEOUT_MS,
  );

  it(
    "writes an HTML report that opens offline in Chromium with its three charts drawn",
    async () => {
      const { code, run } = await runLoadtest(["--url", urls, ...SMALL_RUN]);
      expect(code, run.stderr()).toBe(0);
      const profile = await mkdtemp(join(tmpdir(), "switchboard-chromium-"));
      const browser = await chromium.launchPersistentContext(profile, {
        executablePath: "/usr/bin/chromium",
        headless: true,
        offline: true,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      try {
        const page = await browser.newPage();
        const problems: string[] = [];
        page.on("console", (message) => {
          if (message.type() === "error") problems.push(message.text());
        });
        page.on("pageerror", (err) => problems.push(err.message));
        page.on("request", (request) => {
          if (!request.url().startsWith("file:")) problems.push(`fetched ${request.url()}`);
        });
        await page.goto(pathToFileURL(join(run.dir, "report.html")).href);
        await page.waitForSelector("body[data-charts='3']", { timeout: 20_000 });
        // Each chart's canvas has pixels painted: axes, grid and the series' lines.
        // (A string: the test's TypeScript has no DOM types.)
        const painted = await page.evaluate<number[]>(`
        [...document.querySelectorAll(".uplot canvas")].map((canvas) => {
          const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let count = 0;
          for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) count++;
          return count;
        })`);
        expect(painted).toHaveLength(3);
        for (const count of painted) expect(count).toBeGreaterThan(1000);
        expect(await page.textContent("#summary")).toContain("delivered");
        expect(problems).toEqual([]);
      } finally {
        await browser.close();
        await rm(profile, { recursive: true, force: true });
      }
    },
    RUN_TIMEOUT_MS,
  );
});
