#!/usr/bin/env node
// Per-gateway figures for docs/SCALING.md's capacity model, measured with the production entry
// point (bin/switchboard.js, built dist/) and `switchboard loadtest` as the client side:
//
//   npm run build && node deploy/capacity/measure.mjs [--quick] [--only=idle,connect,deliver,idle-gw]
//
// Needs Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 (guest), like npm test. Every
// load is bounded in count and time; everything runs on loopback; the gateways are this
// script's children, stopped by PID. Prints one JSON object and a summary table.
//
//   idle      one gateway (redis backplane) holding N idle WebSocket clients: RSS per connection
//   connect   connect-storm against one gateway: accepted connections per second
//   deliver   two gateways (redis), clients in rooms, a fixed publish rate: gateway CPU
//             microseconds per delivery (the inverse is deliveries/s per core)
//   idle-gw   three gateways per backplane, every client on gateway 1: what a gateway with no
//             member of any room pays per broadcast (CPU µs, broadcasts it received)

import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const QUICK = process.argv.includes("--quick");
const BIN = fileURLToPath(new URL("../../bin/switchboard.js", import.meta.url));
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const AMQP_URL = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
const IDLE_CLIENTS = QUICK ? 2000 : 5000;
const SECONDS = QUICK ? 4 : 10;

const cpuSeconds = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
};
const rssBytes = (pid) =>
  Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;

const freePort = () =>
  new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

async function gateway(env) {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, "gateway"], {
    env: {
      PATH: process.env.PATH,
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  running.add(child);
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`gateway ${url} not ready`);
    await sleep(100);
  }
  return {
    pid: child.pid,
    url,
    async metric(name) {
      let text = "";
      for (let attempt = 0; attempt < 5 && text === ""; attempt++) {
        text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) }).then(
          (r) => r.text(),
          () => "",
        );
      }
      if (text === "") throw new Error(`${url}/metrics did not answer (${name})`);
      const line = text
        .split("\n")
        .find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return line ? Number(line.split(" ").at(-1)) : 0;
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((resolve) =>
        child.exitCode !== null ? resolve() : child.once("exit", resolve),
      );
      running.delete(child);
    },
  };
}

/** Runs `switchboard loadtest` as a child (asynchronously, so samplers keep running). */
async function loadtest(args) {
  const file = join(tmpdir(), `swb-capacity-${process.pid}-${Date.now()}.json`);
  const child = spawn(
    process.execPath,
    [BIN, "loadtest", ...args, "--json", file, "--drain", "5s"],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  running.add(child);
  const timer = setTimeout(() => child.kill("SIGINT"), 300_000);
  const code = await new Promise((resolve) => child.once("exit", resolve));
  clearTimeout(timer);
  running.delete(child);
  // 1 = a limit was exceeded, 69 = some clients could not connect: the report still says what
  // was measured, and the exit code is kept beside it.
  if (!existsSync(file)) throw new Error(`loadtest exited ${code} without a report`);
  const report = { ...JSON.parse(readFileSync(file, "utf8")), exitCode: code };
  rmSync(file, { force: true });
  return report;
}

const exchange = () => `capacity.${process.pid}.${Math.random().toString(16).slice(2, 8)}`;

async function idle() {
  const gw = await gateway({
    BACKPLANE: "redis",
    REDIS_URL,
    INGEST: "off",
    SHUTDOWN_DRAIN_MS: "0",
  });
  await sleep(1000);
  const base = rssBytes(gw.pid);
  let peak = base;
  let connectedPeak = 0;
  const sampler = setInterval(async () => {
    const rss = rssBytes(gw.pid);
    const connected = await gw.metric("switchboard_gateway_connections").catch(() => 0);
    if (connected >= connectedPeak) {
      connectedPeak = connected;
      peak = Math.max(peak, rss);
    }
  }, 250);
  const report = await loadtest([
    "--url",
    gw.url,
    "--clients",
    String(IDLE_CLIENTS),
    "--rooms",
    "100",
    "--rate",
    "0",
    "--duration",
    `${SECONDS}s`,
    "--ramp",
    "2000/s",
  ]);
  clearInterval(sampler);
  await gw.stop();
  return {
    clients: report.connections.members,
    baseRssMB: +(base / 2 ** 20).toFixed(1),
    peakRssMB: +(peak / 2 ** 20).toFixed(1),
    rssPerConnectionKB: +((peak - base) / 1024 / Math.max(1, connectedPeak)).toFixed(1),
    connectedAtPeak: connectedPeak,
    loadtestExit: report.exitCode,
  };
}

async function connect() {
  const gw = await gateway({
    BACKPLANE: "redis",
    REDIS_URL,
    INGEST: "off",
    SHUTDOWN_DRAIN_MS: "0",
  });
  const report = await loadtest([
    "--url",
    gw.url,
    "--scenario",
    "connect-storm",
    "--clients",
    "200",
    "--duration",
    `${SECONDS}s`,
  ]);
  await gw.stop();
  return {
    acceptedPerSec: report.connections.acceptedPerSec,
    connectP50ms: report.connectMs.p50,
    connectP99ms: report.connectMs.p99,
    failed: report.connections.failed,
  };
}

async function deliver() {
  const env = { BACKPLANE: "redis", REDIS_URL, INGEST: "off", SHUTDOWN_DRAIN_MS: "0" };
  const gws = [await gateway(env), await gateway(env)];
  const cpu0 = gws.map((g) => cpuSeconds(g.pid));
  const report = await loadtest([
    "--url",
    gws.map((g) => g.url).join(","),
    "--clients",
    "200",
    "--rooms",
    "20",
    "--rate",
    "1000",
    "--duration",
    `${SECONDS}s`,
    "--payload",
    "100",
  ]);
  const cpu = gws.reduce((sum, g, i) => sum + cpuSeconds(g.pid) - cpu0[i], 0);
  for (const g of gws) await g.stop();
  return {
    delivered: report.delivered,
    lost: report.lost,
    deliveredPerSec: report.deliveredPerSec,
    p50ms: report.latencyMs.p50,
    p99ms: report.latencyMs.p99,
    gatewayCpuSeconds: +cpu.toFixed(2),
    cpuMicrosPerDelivery: +((cpu * 1e6) / Math.max(1, report.delivered)).toFixed(1),
    deliveriesPerCoreSecond: Math.round(report.delivered / Math.max(cpu, 1e-9)),
  };
}

async function idleGateway(backplane) {
  const env = {
    BACKPLANE: backplane,
    REDIS_URL,
    AMQP_URL,
    AMQP_EXCHANGE: exchange(),
    INGEST: "off",
    SHUTDOWN_DRAIN_MS: "0",
  };
  const gws = [await gateway(env), await gateway(env), await gateway(env)];
  const quiet = gws.slice(1);
  // The same window with no load first: heartbeats and timers are not charged to broadcasts.
  const idle0 = quiet.map((g) => cpuSeconds(g.pid));
  await sleep(SECONDS * 1000);
  const idleCpu = quiet.reduce((s, g, i) => s + cpuSeconds(g.pid) - idle0[i], 0) / quiet.length;
  const before = await Promise.all(
    quiet.map((g) => g.metric("switchboard_backplane_received_broadcasts_total")),
  );
  const cpu0 = quiet.map((g) => cpuSeconds(g.pid));
  const report = await loadtest([
    "--url",
    gws[0].url,
    "--clients",
    "100",
    "--rooms",
    "10",
    "--rate",
    "500",
    "--duration",
    `${SECONDS}s`,
    "--payload",
    "100",
  ]);
  const loadCpu = quiet.reduce((s, g, i) => s + cpuSeconds(g.pid) - cpu0[i], 0) / quiet.length;
  const after = await Promise.all(
    quiet.map((g) => g.metric("switchboard_backplane_received_broadcasts_total")),
  );
  for (const g of gws) await g.stop();
  const received = after.reduce((s, v, i) => s + v - before[i], 0) / quiet.length;
  return {
    backplane,
    broadcasts: report.sent,
    delivered: report.delivered,
    lost: report.lost,
    receivedPerMemberlessGateway: backplane === "amqp" ? received : "not counted",
    memberlessCpuMicrosPerBroadcast: +(
      ((loadCpu - idleCpu) * 1e6) /
      Math.max(1, report.sent)
    ).toFixed(1),
  };
}

const ONLY = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice("--only=".length)
  .split(",");
const want = (phase) => !ONLY || ONLY.includes(phase);
const results = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} × ${cpus()[0]?.model}`,
  loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" "),
  quick: QUICK,
  idle: want("idle") ? await idle() : undefined,
  connect: want("connect") ? await connect() : undefined,
  deliver: want("deliver") ? await deliver() : undefined,
  idleGateway: [],
};
for (const backplane of want("idle-gw") ? ["redis", "redis-sharded", "amqp"] : []) {
  results.idleGateway.push(await idleGateway(backplane));
}
results.loadAverageAfter = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
console.log(JSON.stringify(results, null, 2));
process.exit(0);
