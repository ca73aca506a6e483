import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { freePort } from "../test/support/ports.js";
import { startPrivateRedis } from "../test/support/redis-server.js";
import { LoadSession, round } from "./load.js";
import {
  envNumber,
  gatewayEnv,
  here,
  loadAverage,
  pin,
  runMain,
  type ServerProcess,
  startServer,
} from "./procs.js";

/**
 * Garbage per delivery, a measure that holds on a busy machine (bytes and collections are counts,
 * not times): two servers on a private Redis (stock Socket.IO + @socket.io/redis-adapter, or
 * Switchboard `BACKPLANE=redis`) under the bench load (200 clients in 20 rooms, 10 publishers,
 * 1,000 publishes/s, 100-byte payloads), and for each server, over a measured window after the
 * warm-up: bytes allocated on the V8 heap and scavenges per 10,000 deliveries (the bench probe's
 * v8.GCProfiler figures).
 *
 *   node --import tsx bench/alloc.ts [sio|sb|path/to/bin/switchboard.js ...]
 *
 * ALLOC_SPLIT=1: the publishers on server 0 and every receiver on server 1, so that server 0 only
 * takes clients' publishes (and publishes them to Redis) and server 1 only delivers what comes
 * from Redis: the two halves of a delivery apart. ALLOC_HEAP_DIR=dir: also a sampling heap
 * profile of each server over the window (garbage included: who allocates), written there with a
 * summary by function (`<target>-p<i>.heapprofile`, `.txt`). ALLOC_REPEATS (1), ALLOC_RATE
 * (1000), ALLOC_WARMUP_MS (8000), ALLOC_DURATION_MS (5000).
 */

const REPEATS = envNumber("ALLOC_REPEATS", 1);
const RATE = envNumber("ALLOC_RATE", 1000);
const WARMUP_MS = envNumber("ALLOC_WARMUP_MS", 8000);
const DURATION_MS = envNumber("ALLOC_DURATION_MS", 5000);
const SPLIT = process.env.ALLOC_SPLIT === "1";
const HEAP_DIR = process.env.ALLOC_HEAP_DIR;
const LOAD = { clients: 200, rooms: 20, publishers: 10, payloadBytes: 100, workers: 2 };
const TWO_CORES = cpus().length >= 2;
const TARGETS = process.argv.slice(2);
if (TARGETS.length === 0) TARGETS.push("sio", "sb");

interface Alloc {
  allocatedBytes: number;
  scavenges: number;
  markCompacts: number;
  gcs: number;
  gcMs: number;
}

/** A bench probe request that ServerProcess does not wrap (alloc, heapsample). */
type Probe = ServerProcess["probe"];

async function startTarget(target: string, redisUrl: string, i: number) {
  const port = await freePort();
  const common = { name: `${target}#${i}`, port, cpus: TWO_CORES ? "0" : undefined };
  if (target === "sio") {
    return startServer({
      ...common,
      script: here("./servers/stock-sio.mjs"),
      args: [String(port), redisUrl],
      readyPath: "/socket.io/?EIO=4&transport=polling",
    });
  }
  return startServer({
    ...common,
    script: target === "sb" ? here("../bin/switchboard.js") : target,
    args: ["gateway"],
    readyPath: "/readyz",
    env: gatewayEnv(port, `alloc-${i}`, { BACKPLANE: "redis", REDIS_URL: redisUrl }),
  });
}

async function cell(target: string, redisUrl: string, repeat: number): Promise<string[]> {
  const servers: ServerProcess[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startTarget(target, redisUrl, i));
    const urls = servers.map((s) => s.url);
    const session = new LoadSession({
      kind: "sio",
      urls: SPLIT ? [urls[1]!] : urls,
      publisherUrls: SPLIT ? [urls[0]!] : urls,
      ...LOAD,
      genCpus: TWO_CORES ? "1" : undefined,
    });
    const probes: Probe[] = servers.map((s) => s.probe);
    const label = `${target.replace(/^.*\/([^/]+)\/bin\/switchboard\.js$/, "$1")}`;
    const base = (i: number) => `${HEAP_DIR}/${label}-r${repeat}${SPLIT ? "-split" : ""}-p${i}`;
    let started: Promise<unknown>[] = [];
    let stopped: Promise<Alloc>[] = [];
    try {
      await session.start();
      const load = loadAverage();
      const step = await session.step(RATE, [], {
        warmupMs: WARMUP_MS,
        durationMs: DURATION_MS,
        drainMs: 2000,
        window: {
          warmup: () => {},
          open: () => {
            started = probes.map((p) =>
              Promise.all([
                p({ probe: "alloc", action: "start" }),
                HEAP_DIR ? p({ probe: "heapsample", action: "start", intervalBytes: 16384 }) : 0,
              ]),
            );
          },
          close: () => {
            stopped = probes.map((p, i) =>
              started[i]!.then(async () => {
                const alloc = (await p({ probe: "alloc", action: "stop" })) as unknown as Alloc;
                if (HEAP_DIR)
                  await p({ probe: "heapsample", action: "stop", file: `${base(i)}.heapprofile` });
                return alloc;
              }),
            );
          },
        },
      });
      const allocs = await Promise.all(stopped);
      const deliveries = Math.round((step.deliveredPerSec * DURATION_MS) / 1000);
      const per10k = (v: number) => round((v * 10_000) / deliveries, 1);
      const rows = allocs.map((a, i) => {
        const role = SPLIT ? (i === 0 ? "publishes (no members)" : "delivers from Redis") : "both";
        if (HEAP_DIR) summarize(`${base(i)}.heapprofile`, deliveries);
        return (
          `| ${label} r${repeat} | ${i} ${role} | ${deliveries} | ${round(a.allocatedBytes / deliveries, 0)} | ` +
          `${per10k(a.scavenges)} | ${per10k(a.markCompacts)} | ${per10k(a.gcMs)} | ${step.lossPct} | ${load} |`
        );
      });
      const total = allocs.reduce((s, a) => s + a.allocatedBytes, 0);
      const scavenges = allocs.reduce((s, a) => s + a.scavenges, 0);
      rows.push(
        `| ${label} r${repeat} | both processes | ${deliveries} | ${round(total / deliveries, 0)} | ${per10k(scavenges)} | | | | |`,
      );
      return rows;
    } finally {
      await session.close();
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** Writes `<profile>.txt`: sampled bytes per delivery by allocating function and by package. */
function summarize(file: string, deliveries: number): void {
  const { head } = JSON.parse(readFileSync(file, "utf8")) as { head: HeapNode };
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode) => {
    const f = node.callFrame;
    const url = f.url.replace(/^file:\/\//, "");
    const pkg =
      /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ??
      (url.startsWith("node:") || url === "" ? url || "(native)" : "switchboard");
    const key = `${f.functionName || "(anonymous)"} ${url.replace(/^.*node_modules\//, "")}:${f.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + node.selfSize);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + node.selfSize);
    total += node.selfSize;
    for (const child of node.children) walk(child);
  };
  walk(head);
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${String(round(v / deliveries, 1)).padStart(8)} B  ${k}`);
  const text = [
    `${file}: ${round(total / deliveries, 1)} sampled bytes per delivery (${deliveries} deliveries)`,
    "",
    "by package:",
    ...top(byPackage, 20),
    "",
    "by allocating function:",
    ...top(byFunction, 40),
  ].join("\n");
  writeFileSync(file.replace(/\.heapprofile$/, ".txt"), `${text}\n`);
}

async function main() {
  if (HEAP_DIR) mkdirSync(HEAP_DIR, { recursive: true });
  console.log(
    `alloc: ${LOAD.clients} clients in ${LOAD.rooms} rooms, ${LOAD.publishers} publishers, ${RATE} publishes/s, ` +
      `warm-up ${WARMUP_MS} ms, window ${DURATION_MS} ms${SPLIT ? ", split (publishers on 0, receivers on 1)" : ""}`,
  );
  const redis = await startPrivateRedis();
  pin(redis.pid ?? -1, TWO_CORES ? "0" : undefined);
  const lines = [
    "| target | server | deliveries | bytes allocated / delivery | scavenges / 10k | mark-compacts / 10k | GC ms / 10k | loss % | load |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  try {
    for (let r = 1; r <= REPEATS; r++) {
      for (const target of TARGETS) {
        const rows = await cell(target, redis.url, r);
        console.error(rows.join("\n"));
        lines.push(...rows);
      }
    }
  } finally {
    await redis.stop();
  }
  console.log(lines.join("\n"));
}

runMain(main);
