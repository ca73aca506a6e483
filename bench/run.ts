import { randomUUID } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../test/support/ports.js";
import { startPrivateRedis } from "../test/support/redis-server.js";
import { type Accounted, LoadSession, round, type StepResult } from "./load.js";
import {
  altCliFromEnv,
  countEvents,
  envNumber,
  findPids,
  gatewayEnv,
  here,
  loadAverage,
  type ProfileWindow,
  pin,
  recordCpu,
  runMain,
  type ServerProcess,
  startServer,
} from "./procs.js";

/**
 * `npm run bench`: Switchboard against the stock stack it is built on, side by side in one run.
 *
 *  - raw-ws       a plain `ws` broadcast server (bench/servers/raw-ws.mjs): the ceiling
 *  - sio-memory   stock Socket.IO, 1 process (bench/servers/stock-sio.mjs)
 *  - sio-redis    stock Socket.IO + @socket.io/redis-adapter, 2 processes + Redis
 *  - sb-memory    Switchboard (bin/switchboard.js, built dist/), BACKPLANE=memory, 1 process
 *  - sb-redis     Switchboard, BACKPLANE=redis, 2 gateways + Redis
 *  - sb-amqp      Switchboard, BACKPLANE=amqp, 2 gateways + RabbitMQ
 *
 * Servers (and the bench's private Redis) are pinned to core 0, the load generator to core 1.
 * Repeats are interleaved and every cell starts fresh processes. It prints the ratio table of
 * the performance targets and writes .bench/bench-<time>.json. BENCH_QUICK=1: one short repeat;
 * BENCH_ONLY=sb-redis,sio-redis: those targets; BENCH_PROFILE_DIR=dir: every server process of a
 * fixed-load cell (stock or Switchboard alike) is CPU-profiled during each measured window
 * (`<target>-r<repeat>-<rate>-p<i>.cpuprofile`, with a `.json` beside it: deliveries in the
 * window, event-loop delay, GC pauses); `bench/profile.ts` compares them per delivery.
 */

const QUICK = process.env.BENCH_QUICK === "1";
const REPEATS = envNumber("BENCH_REPEATS", QUICK ? 1 : 3);
const DURATION_MS = envNumber("BENCH_DURATION_MS", QUICK ? 3000 : 5000);
const RATE = envNumber("BENCH_RATE", 1000);
/**
 * Load before the measured window of a fixed-load cell, in ms. Long enough for the servers to
 * reach their steady state: with 2 s, a good part of the window's CPU is still V8's optimizing
 * compiler (pinned to the servers' core with them), charged per delivery (see BENCHMARKS.md).
 */
const WARMUP_MS = envNumber("BENCH_WARMUP_MS", QUICK ? 3000 : 8000);
/** Idle time before each memory sample (base, then with the connections), as ../shared/bench's mem.mjs. */
const SETTLE_MS = envNumber("BENCH_SETTLE_MS", 3000);
const SATURATION_RATE = envNumber("BENCH_SATURATION_RATE", 2500);
const IDLE_CONNECTIONS = envNumber("BENCH_IDLE_CONNECTIONS", QUICK ? 5000 : 10_000);
const CONNECT_CLIENTS = envNumber("BENCH_CONNECT_CLIENTS", 2000);
const ONLY = process.env.BENCH_ONLY?.split(",");
/** A directory: servers are CPU-profiled during the measured windows, the profiles written there. */
const PROFILE_DIR = process.env.BENCH_PROFILE_DIR;
/**
 * "v8" (default): the V8 sampling profiler inside each server (wall-clock samples: on a busy
 * machine a preempted function is charged the time it waited); "perf": `perf record` of CPU time
 * only, kernel included (servers run with --perf-basic-prof).
 */
const PROFILER = ((raw = process.env.BENCH_PROFILER || "v8") => {
  if (raw !== "v8" && raw !== "perf")
    throw new Error(`BENCH_PROFILER must be v8 or perf (got ${raw})`);
  return raw;
})();
const LOAD = { clients: 200, rooms: 20, publishers: 10, payloadBytes: 100, workers: 2 };
const TWO_CORES = cpus().length >= 2;
const SERVER_CPUS = TWO_CORES ? "0" : undefined;
const GEN_CPUS = TWO_CORES ? "1" : undefined;
const CLI = here("../bin/switchboard.js");

/**
 * Another build of Switchboard to compare in the same run (A/B): its `bin/switchboard.js`. It
 * adds the targets `sb-memory-alt`, `sb-redis-alt`, `sb-amqp-alt`, each run right after its
 * namesake (name them in BENCH_ONLY).
 */
const ALT_CLI = altCliFromEnv();
/** More node options for every server process (e.g. `--trace-gc`, `--log-deopt --logfile=…`). */
const NODE_ARGS = process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? [];

type SbTarget = "sb-memory" | "sb-redis" | "sb-amqp";
type TargetName = "raw-ws" | "sio-memory" | "sio-redis" | SbTarget | `${SbTarget}-alt`;

interface Running {
  servers: ServerProcess[];
  accounted: Accounted[];
  urls: string[];
  stop(): Promise<void>;
}

interface Brokers {
  redisUrl: string;
  redisPid: number | undefined;
  amqpUrl: string;
  rabbitPids: number[];
}

async function startTarget(name: TargetName, b: Brokers, count?: number): Promise<Running> {
  const base = name.replace(/-alt$/, "");
  const procs = count ?? (base.endsWith("redis") || base.endsWith("amqp") ? 2 : 1);
  const exchange = `bench.${randomUUID().slice(0, 8)}`;
  const servers: ServerProcess[] = [];
  try {
    for (let i = 0; i < procs; i++) {
      const port = await freePort();
      const common = {
        name: `${name}#${i}`,
        port,
        cpus: SERVER_CPUS,
        execArgv: [
          ...(PROFILE_DIR && PROFILER === "perf" ? ["--perf-basic-prof"] : []),
          ...NODE_ARGS,
        ],
      };
      if (name === "raw-ws") {
        servers.push(
          await startServer({
            ...common,
            script: here("./servers/raw-ws.mjs"),
            args: [String(port)],
            readyPath: "/",
          }),
        );
      } else if (name.startsWith("sio-")) {
        const args = name === "sio-redis" ? [String(port), b.redisUrl] : [String(port)];
        servers.push(
          await startServer({
            ...common,
            script: here("./servers/stock-sio.mjs"),
            args,
            readyPath: "/socket.io/?EIO=4&transport=polling",
          }),
        );
      } else {
        const backplane = name.slice(3).replace(/-alt$/, "");
        servers.push(
          await startServer({
            ...common,
            script: name.endsWith("-alt") && ALT_CLI ? ALT_CLI : CLI,
            args: ["gateway"],
            readyPath: "/readyz",
            env: gatewayEnv(port, `${name}-${i}`, {
              BACKPLANE: backplane,
              REDIS_URL: b.redisUrl,
              AMQP_URL: b.amqpUrl,
              AMQP_EXCHANGE: exchange,
            }),
          }),
        );
      }
    }
  } catch (err) {
    await Promise.all(servers.map((s) => s.stop()));
    throw err;
  }
  const accounted: Accounted[] = servers.map((s) => ({ role: s.name, pid: s.pid }));
  if (base.endsWith("redis") && b.redisPid !== undefined)
    accounted.push({ role: "redis", pid: b.redisPid });
  if (base.endsWith("amqp"))
    for (const pid of b.rabbitPids) accounted.push({ role: "rabbitmq", pid });
  return {
    servers,
    accounted,
    urls: servers.map((s) => s.url),
    stop: async () => {
      await Promise.all(servers.map((s) => s.stop()));
    },
  };
}

const log = (...args: unknown[]) =>
  console.error(`[${new Date().toISOString().slice(11, 19)} load ${loadAverage()}]`, ...args);

// ---------------------------------------------------------------------------------------------

interface Cells {
  fixed: Record<string, StepResult[]>;
  saturated: Record<string, StepResult[]>;
  memory: Record<
    string,
    Array<{ baseRssMB: number; rssPerConnKB: number; heapPerConnKB: number; baseHeapMB: number }>
  >;
  connect: Record<string, number[]>;
  loadAverages: string[];
}
const cells: Cells = { fixed: {}, saturated: {}, memory: {}, connect: {}, loadAverages: [] };
const STARTED = new Date();
const PARTIAL = here(`../.bench/bench-${STARTED.toISOString().replace(/[:.]/g, "-")}.partial.json`);
const push = <T>(table: Record<string, T[]>, key: string, value: T) => {
  const list = table[key] ?? [];
  list.push(value);
  table[key] = list;
  // Written after every cell: a run cut short keeps what it measured.
  mkdirSync(here("../.bench"), { recursive: true });
  writeFileSync(PARTIAL, JSON.stringify({ started: STARTED, cells }, null, 2));
};
const wanted = (name: string) => ONLY === undefined || ONLY.includes(name);

const profiledCells = new Map<string, number>();

/**
 * With BENCH_PROFILE_DIR: hooks that profile every server of `target` during a measured window
 * (through the bench probe), and `save(result)` that waits for the profiles and writes, beside
 * each, what it covers: deliveries in the window (all processes'), loop delay, GC pauses.
 */
function profileWindow(name: TargetName, target: Running, rate: number) {
  if (PROFILE_DIR === undefined) return { hooks: undefined, save: async () => {} };
  mkdirSync(PROFILE_DIR, { recursive: true });
  const key = `${name}-${rate}`;
  const repeat = (profiledCells.get(key) ?? 0) + 1;
  profiledCells.set(key, repeat);
  const base = (i: number) => `${PROFILE_DIR}/${name}-r${repeat}-${rate}-p${i}`;
  let stops: Promise<ProfileWindow | undefined>[] = [];
  const warn = (err: unknown) => {
    log(`profile of ${name}: ${String(err)}`);
    return undefined;
  };
  let starts: Promise<unknown>[] = [];
  let counters: ReturnType<typeof countEvents>[] = [];
  let recorders: ReturnType<typeof recordCpu>[] = [];
  let counted: Promise<(Record<string, number> | undefined)[]> = Promise.resolve([]);
  // The profiler starts with the warm-up (V8 logs every compiled function as it starts, which
  // blocks the loop for up to a second in a large process) and keeps only the window's samples.
  const hooks = {
    warmup: () => {
      if (PROFILER === "v8") starts = target.servers.map((s) => s.profile("start").catch(warn));
    },
    open: () => {
      if (PROFILER === "v8")
        for (const s of target.servers)
          void Promise.all(starts).then(() => s.profile("mark").catch(warn));
      else recorders = target.servers.map((s, i) => recordCpu(s.pid, `${base(i)}.perf.data`));
      counters = target.accounted.map((a) => countEvents(a.pid));
    },
    close: () => {
      counted = Promise.all(counters.map((c) => c.stop()));
      stops =
        PROFILER === "v8"
          ? target.servers.map((s, i) =>
              Promise.all(starts).then(() =>
                s.profile("stop", `${base(i)}.cpuprofile`).catch(warn),
              ),
            )
          : recorders.map((r) => r.stop().then(() => ({})));
    },
  };
  const save = async (result: StepResult, durationMs: number) => {
    const windows = await Promise.all(stops);
    // Syscalls and context switches of every accounted process (servers and broker), per role.
    const events = await counted;
    const syscalls = Object.fromEntries(
      target.accounted.map((a, i) => [a.role, events[i]]).filter(([, e]) => e !== undefined),
    );
    windows.forEach((w, i) => {
      if (w === undefined) return;
      const meta = {
        target: name,
        process: target.servers[i]?.name,
        rate,
        repeat,
        durationMs,
        deliveries: Math.round((result.deliveredPerSec * durationMs) / 1000),
        processes: target.servers.length,
        loopDelayMs: w.loop,
        gc: w.gc,
        syscalls,
      };
      writeFileSync(`${base(i)}.json`, JSON.stringify(meta, null, 2));
    });
  };
  return { hooks, save };
}

async function fixedLoadCell(name: TargetName, b: Brokers) {
  const target = await startTarget(name, b);
  const session = new LoadSession({
    kind: name === "raw-ws" ? "ws" : "sio",
    urls: target.urls,
    ...LOAD,
    genCpus: GEN_CPUS,
  });
  try {
    await session.start();
    cells.loadAverages.push(loadAverage());
    const profile = profileWindow(name, target, RATE);
    const fixed = await session.step(RATE, target.accounted, {
      warmupMs: WARMUP_MS,
      durationMs: DURATION_MS,
      drainMs: 2000,
      window: profile.hooks,
    });
    await profile.save(fixed, DURATION_MS);
    push(cells.fixed, name, fixed);
    log(`${name} @${RATE}/s`, summary(fixed));
    if (/^(sio-redis|sb-redis|sb-amqp)(-alt)?$/.test(name)) {
      const saturated = await session.step(SATURATION_RATE, target.accounted, {
        warmupMs: 1000,
        durationMs: Math.min(DURATION_MS, 4000),
        drainMs: 1000,
      });
      push(cells.saturated, name, saturated);
      log(`${name} @${SATURATION_RATE}/s`, summary(saturated));
    }
  } finally {
    await session.close();
    await target.stop();
  }
}

async function memoryCell(name: TargetName, b: Brokers) {
  const target = await startTarget(name, b, 1);
  const server = target.servers[0]!;
  const session = new LoadSession({
    kind: name === "raw-ws" ? "ws" : "sio",
    urls: target.urls,
    clients: IDLE_CONNECTIONS,
    rooms: 1,
    publishers: 0,
    payloadBytes: 0,
    workers: 2,
    idle: true,
    concurrency: 200,
    genCpus: GEN_CPUS,
  });
  try {
    await sleep(SETTLE_MS);
    const base = await server.memory();
    const connected = await session.start();
    await sleep(SETTLE_MS);
    const full = await server.memory();
    const row = {
      baseRssMB: round(base.rss / 2 ** 20, 1),
      baseHeapMB: round(base.heapUsed / 2 ** 20, 1),
      rssPerConnKB: round((full.rss - base.rss) / connected.ok / 1024, 2),
      heapPerConnKB: round((full.heapUsed - base.heapUsed) / connected.ok / 1024, 2),
    };
    push(cells.memory, name, row);
    log(`${name} idle x${connected.ok}`, JSON.stringify(row));
  } finally {
    await session.close();
    await target.stop();
  }
}

async function connectCell(name: TargetName, b: Brokers) {
  const target = await startTarget(name, b, 1);
  const session = new LoadSession({
    kind: "sio",
    urls: target.urls,
    clients: CONNECT_CLIENTS,
    rooms: 1,
    publishers: 0,
    payloadBytes: 0,
    workers: 2,
    idle: true,
    concurrency: 100,
    genCpus: GEN_CPUS,
  });
  try {
    const connected = await session.start();
    push(cells.connect, name, connected.perSec);
    log(
      `${name} connect`,
      `${connected.perSec}/s (${connected.ok} in ${Math.round(connected.wallMs)} ms)`,
    );
  } finally {
    await session.close();
    await target.stop();
  }
}

function summary(r: StepResult): string {
  return (
    `delivered ${r.deliveredPerSec}/s loss ${r.lossPct}% p50 ${r.latencyMs.p50} p99 ${r.latencyMs.p99} ms ` +
    `cpu ${r.serverCpuUsPerDelivery} µs/delivery (user ${r.serverUserUsPerDelivery}, system ${r.serverSysUsPerDelivery}) ` +
    `${JSON.stringify(r.perProcessCpuPct)} gen ${r.genCpuPct}% ` +
    `p50 same-server ${r.latencyByPath.same.p50} cross-server ${r.latencyByPath.cross.p50} ms ` +
    `other ${r.otherCpuPct}% rss ${r.serverRssMB} MB acks-failed ${r.acksFailed} missing ${r.acksMissing}`
  );
}

// ---------------------------------------------------------------------------------------------

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (values: number[], digits = 2) =>
  values.length > 1
    ? ` (${round(Math.min(...values), digits)}–${round(Math.max(...values), digits)})`
    : "";
const cellOf = (values: number[], digits = 2) =>
  values.length === 0 ? "–" : `${round(median(values), digits)}${spread(values, digits)}`;

interface RatioRow {
  id: string;
  measure: string;
  a: number[];
  b: number[];
  /** "ratio": median(a)/median(b); "diff": median(a)-median(b); "value": median(a). */
  kind: "ratio" | "diff" | "value";
  goal: { op: "<=" | ">="; value: number };
}

function ratioTable(): { markdown: string; rows: object[] } {
  const f = (t: string, pick: (r: StepResult) => number) => (cells.fixed[t] ?? []).map(pick);
  const s = (t: string, pick: (r: StepResult) => number) => (cells.saturated[t] ?? []).map(pick);
  const m = (t: string, pick: (r: Cells["memory"][string][number]) => number) =>
    (cells.memory[t] ?? []).map(pick);
  const cpu = (r: StepResult) => r.serverCpuUsPerDelivery;
  const p50 = (r: StepResult) => r.latencyMs.p50;
  const p99 = (r: StepResult) => r.latencyMs.p99;
  const row = (
    id: string,
    measure: string,
    a: number[],
    b: number[],
    op: "<=" | ">=",
    value: number,
    kind: RatioRow["kind"] = "ratio",
  ): RatioRow => ({ id, measure, a, b, kind, goal: { op, value } });
  /** Target `a` ÷ target `b` on one measure of the fixed-rate cells, at most `value`. */
  const fixed = (
    id: string,
    a: string,
    b: string,
    measure: string,
    pick: (r: StepResult) => number,
    value: number,
  ) => row(id, `${a} ÷ ${b}: ${measure}`, f(a, pick), f(b, pick), "<=", value);
  /** sb-memory against sio-memory on one measure of the idle-connection cells, at most `value`. */
  const memory = (
    measure: string,
    pick: (r: Cells["memory"][string][number]) => number,
    value: number,
    kind: RatioRow["kind"],
  ) => row("P6", measure, m("sb-memory", pick), m("sio-memory", pick), "<=", value, kind);
  const rows: RatioRow[] = [
    fixed("P1/P7", "sb-redis", "sio-redis", "server CPU µs/delivery", cpu, 0.8),
    fixed("P1/P7", "sb-redis", "sio-redis", "p50", p50, 1.0),
    fixed("P1/P7", "sb-redis", "sio-redis", "p99", p99, 1.0),
    row(
      "P2",
      `sb-amqp ÷ sb-redis: delivered/s at saturation (${SATURATION_RATE} publishes/s offered)`,
      s("sb-amqp", (r) => r.deliveredPerSec),
      s("sb-redis", (r) => r.deliveredPerSec),
      ">=",
      0.9,
    ),
    fixed("P2", "sb-amqp", "sb-redis", "p50", p50, 1.5),
    fixed("P2", "sb-amqp", "sb-redis", "p99", p99, 2.0),
    fixed("P4", "sb-memory", "raw-ws", "server CPU µs/delivery", cpu, 1.3),
    row(
      "P6",
      `sb-memory heap KB/connection after GC (${IDLE_CONNECTIONS} idle)`,
      m("sb-memory", (r) => r.heapPerConnKB),
      [],
      "<=",
      6,
      "value",
    ),
    memory("sb-memory ÷ sio-memory: RSS KB/connection", (r) => r.rssPerConnKB, 1.0, "ratio"),
    memory("sb-memory − sio-memory: base RSS MB", (r) => r.baseRssMB, 15, "diff"),
    row(
      "connect",
      "sb-amqp ÷ sb-redis: connections/s (1 gateway)",
      cells.connect["sb-amqp"] ?? [],
      cells.connect["sb-redis"] ?? [],
      ">=",
      0.8,
    ),
  ];
  const lines = [
    "| target | measure | A | B | A÷B (or A−B) | goal | met |",
    "|---|---|---|---|---|---|---|",
  ];
  const out: object[] = [];
  const missed = new Set<string>();
  for (const row of rows) {
    if (row.a.length === 0 || (row.kind !== "value" && row.b.length === 0)) {
      lines.push(
        `| ${row.id} | ${row.measure} | – | – | not measured | ${row.goal.op} ${row.goal.value} | – |`,
      );
      continue;
    }
    // Repeats are interleaved, so repeat i of A and of B ran side by side: their ratios' spread.
    const pairs = row.a
      .map((a, i) => {
        const b = row.b[i] ?? Number.NaN;
        return row.kind === "ratio" ? a / b : row.kind === "diff" ? a - b : a;
      })
      .filter(Number.isFinite);
    const value =
      row.kind === "ratio"
        ? median(row.a) / median(row.b)
        : row.kind === "diff"
          ? median(row.a) - median(row.b)
          : median(row.a);
    const met = row.goal.op === "<=" ? value <= row.goal.value : value >= row.goal.value;
    lines.push(
      `| ${row.id} | ${row.measure} | ${cellOf(row.a)} | ${row.kind === "value" ? "–" : cellOf(row.b)} | ` +
        `**${round(value, 2)}**${spread(pairs)} | ${row.goal.op} ${row.goal.value} | ${met ? "yes" : "**no**"} |`,
    );
    if (!met) missed.add(`${row.id} (${row.measure.split(": ").pop()})`);
    out.push({ ...row, value: round(value, 3), pairs, met });
  }
  if (missed.size > 0) {
    lines.push(
      "",
      `Not met here: ${[...missed].join(", ")}. docs/BENCHMARKS.md, "Where the targets stand, and what ` +
        'would move them", has the profile behind each target this machine does not meet and what would move it.',
    );
  }
  return { markdown: lines.join("\n"), rows: out };
}

function targetTable(): string {
  const lines = [
    "| target | delivered/s | loss % | p50 ms | p99 ms | server CPU µs/delivery | server RSS MB | generator CPU % | other CPU % |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const [name, results] of Object.entries(cells.fixed)) {
    const col = (pick: (r: StepResult) => number, d = 2) => cellOf(results.map(pick), d);
    lines.push(
      `| ${name} @${RATE}/s | ${col((r) => r.deliveredPerSec, 0)} | ${col((r) => r.lossPct, 3)} | ${col((r) => r.latencyMs.p50)} | ${col((r) => r.latencyMs.p99)} | ` +
        `${col((r) => r.serverCpuUsPerDelivery, 1)} | ${col((r) => r.serverRssMB, 0)} | ${col((r) => r.genCpuPct, 0)} | ${col((r) => r.otherCpuPct, 0)} |`,
    );
  }
  for (const [name, results] of Object.entries(cells.saturated)) {
    const col = (pick: (r: StepResult) => number, d = 2) => cellOf(results.map(pick), d);
    lines.push(
      `| ${name} @${SATURATION_RATE}/s (saturated) | ${col((r) => r.deliveredPerSec, 0)} | ${col((r) => r.lossPct, 3)} | ${col((r) => r.latencyMs.p50)} | ${col((r) => r.latencyMs.p99)} | ` +
        `${col((r) => r.serverCpuUsPerDelivery, 1)} | ${col((r) => r.serverRssMB, 0)} | ${col((r) => r.genCpuPct, 0)} | ${col((r) => r.otherCpuPct, 0)} |`,
    );
  }
  lines.push(
    "",
    "| target | server user µs/delivery | server system µs/delivery | same-server p50 ms | same-server p99 ms | cross-server p50 ms | cross-server p99 ms | cross-server share |",
    "|---|---|---|---|---|---|---|---|",
  );
  for (const [name, results] of Object.entries(cells.fixed)) {
    const col = (pick: (r: StepResult) => number, d = 2) => cellOf(results.map(pick), d);
    const path = (p: "same" | "cross", q: "p50" | "p99") =>
      results.every((r) => r.latencyByPath[p].n > 0) ? col((r) => r.latencyByPath[p][q]) : "–";
    lines.push(
      `| ${name} @${RATE}/s | ${col((r) => r.serverUserUsPerDelivery, 1)} | ${col((r) => r.serverSysUsPerDelivery, 1)} | ` +
        `${path("same", "p50")} | ${path("same", "p99")} | ${path("cross", "p50")} | ${path("cross", "p99")} | ` +
        `${col((r) => r.latencyByPath.cross.n / Math.max(1, r.latencyByPath.cross.n + r.latencyByPath.same.n), 2)} |`,
    );
  }
  lines.push(
    "",
    "| target | idle connections | base RSS MB | base heap MB | RSS KB/conn | heap KB/conn (after GC) |",
    "|---|---|---|---|---|---|",
  );
  for (const [name, rows] of Object.entries(cells.memory)) {
    lines.push(
      `| ${name} | ${IDLE_CONNECTIONS} | ${cellOf(
        rows.map((r) => r.baseRssMB),
        1,
      )} | ${cellOf(
        rows.map((r) => r.baseHeapMB),
        1,
      )} | ` +
        `${cellOf(rows.map((r) => r.rssPerConnKB))} | ${cellOf(rows.map((r) => r.heapPerConnKB))} |`,
    );
  }
  lines.push("", "| target (1 process) | connections/s |", "|---|---|");
  for (const [name, rates] of Object.entries(cells.connect))
    lines.push(`| ${name} | ${cellOf(rates, 0)} |`);
  return lines.join("\n");
}

async function main() {
  const started = STARTED;
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${round(totalmem() / 2 ** 30, 0)} GiB, Node ${process.version}`;
  console.log(`Switchboard bench — ${started.toISOString()} — ${machine}`);
  console.log(
    `load: ${LOAD.clients} clients in ${LOAD.rooms} rooms, ${LOAD.publishers} publishers, ${RATE} publishes/s (${RATE * (LOAD.clients / LOAD.rooms)} deliveries/s), ` +
      `${LOAD.payloadBytes}-byte payloads, ${DURATION_MS} ms windows, ${REPEATS} repeat(s); pinning: ${TWO_CORES ? "servers core 0, generator core 1" : "off (1 core)"}`,
  );
  const redis = await startPrivateRedis();
  pin(redis.pid ?? -1, SERVER_CPUS);
  const amqpUrl = process.env.AMQP_URL ?? "amqp://guest:guest@127.0.0.1:5672";
  const brokers: Brokers = {
    redisUrl: redis.url,
    redisPid: redis.pid,
    amqpUrl,
    // RabbitMQ is the machine's shared broker (not pinned): its whole VM's CPU is counted.
    rabbitPids: findPids(["beam.smp", "rabbit"]),
  };
  log(
    `private redis pid ${redis.pid}; rabbitmq pid(s) ${brokers.rabbitPids.join(",") || "not found (its CPU is not counted)"}`,
  );
  const fixedTargets: TargetName[] = [
    "raw-ws",
    "sio-memory",
    "sb-memory",
    "sb-memory-alt",
    "sio-redis",
    "sb-redis",
    "sb-redis-alt",
    "sb-amqp",
    "sb-amqp-alt",
  ].filter((t) => ALT_CLI !== undefined || !t.endsWith("-alt")) as TargetName[];
  const memoryTargets: TargetName[] = ["raw-ws", "sio-memory", "sb-memory"];
  const connectTargets: TargetName[] = ["sio-redis", "sb-redis", "sb-amqp"];
  try {
    for (let r = 1; r <= REPEATS; r++) {
      log(`repeat ${r}/${REPEATS}`);
      for (const t of fixedTargets) if (wanted(t)) await fixedLoadCell(t, brokers);
      for (const t of memoryTargets) if (wanted(t)) await memoryCell(t, brokers);
      for (const t of connectTargets) if (wanted(t)) await connectCell(t, brokers);
    }
  } finally {
    await redis.stop();
  }
  if (wanted("bridge")) await import("./bridge.js").then((m) => m.bridgeBench());
  const ratios = ratioTable();
  const finished = new Date();
  const header =
    `Switchboard bench ${started.toISOString()} → ${finished.toISOString()} (${Math.round((finished.getTime() - started.getTime()) / 1000)} s)\n` +
    `machine: ${machine}\nload averages at cell starts (1/5/15 min): ${cells.loadAverages.join(" | ")}\n` +
    "values: median of the repeats (min–max); A÷B spread: min–max of the per-repeat ratios (repeats are interleaved)";
  const others = Object.values(cells.fixed)
    .flat()
    .map((r) => r.otherCpuPct);
  const contaminated =
    others.length > 0 && median(others) > 20
      ? `\n**Contaminated run**: other processes used a median ${round(median(others), 0)} % of a core during the measured windows ` +
        "(load averages above): latencies and CPU per delivery include CPU starvation; re-run on a quiet machine."
      : "";
  const markdown = `${header}${contaminated}\n\n${ratios.markdown}\n\n${targetTable()}\n`;
  console.log(`\n${markdown}`);
  mkdirSync(here("../.bench"), { recursive: true });
  const file = here(`../.bench/bench-${started.toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        started,
        finished,
        machine,
        config: {
          QUICK,
          REPEATS,
          DURATION_MS,
          RATE,
          SATURATION_RATE,
          IDLE_CONNECTIONS,
          CONNECT_CLIENTS,
          LOAD,
        },
        cells,
        ratios: ratios.rows,
        markdown,
      },
      null,
      2,
    ),
  );
  rmSync(PARTIAL, { force: true });
  console.log(`written to ${file}`);
}

runMain(main);
