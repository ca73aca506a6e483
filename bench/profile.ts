import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { basename } from "node:path";

/**
 * Summarizes V8 .cpuprofile files (from `BENCH_PROFILE_DIR=dir npm run bench`): self time by
 * package and by function, highest first.
 *   node --import tsx bench/profile.ts dir/*.cpuprofile [--top 30]
 * Profiles with the bench's `.json` beside them (what window they cover) are grouped by target
 * and shown in absolute terms: ms of CPU in all the target's processes and µs per delivery. With
 * two targets or more (e.g. dir/sio-redis-* dir/sb-redis-*), one column per target and, for the
 * first two, their difference (second − first) per delivery, sorted by it.
 * `.perf.data` files (BENCH_PROFILER=perf) are read with `perf report`: CPU time only, the
 * kernel's share included, JS frames named through --perf-basic-prof.
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}
interface Meta {
  target: string;
  repeat: number;
  rate: number;
  deliveries: number;
  processes: number;
  loopDelayMs?: { p50: number; p99: number; max: number };
  gc?: { count: number; totalMs: number; maxMs: number };
  /** Per accounted process (role): syscalls and context switches in the window. */
  syscalls?: Record<string, Record<string, number>>;
}
interface Group {
  name: string;
  /** µs of self time by package and by function. */
  byPackage: Map<string, number>;
  byFunction: Map<string, number>;
  busyUs: number;
  /** Deliveries of each window the group's profiles cover (a window counts once, whatever its processes). */
  windows: Map<string, number>;
  metas: Meta[];
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
const files = args.filter((a, i) => !a.startsWith("--") && (topAt < 0 || i !== topAt + 1));

const groups = new Map<string, Group>();
const add = (map: Map<string, number>, key: string, v: number) =>
  map.set(key, (map.get(key) ?? 0) + v);

for (const file of files) {
  const metaFile = file.replace(/\.(cpuprofile|perf\.data)$/, ".json");
  const meta = existsSync(metaFile)
    ? (JSON.parse(readFileSync(metaFile, "utf8")) as Meta)
    : undefined;
  const name = meta ? `${meta.target}@${meta.rate}` : "all";
  let group = groups.get(name);
  if (!group) {
    group = {
      name,
      byPackage: new Map(),
      byFunction: new Map(),
      busyUs: 0,
      windows: new Map(),
      metas: [],
    };
    groups.set(name, group);
  }
  if (meta) {
    group.windows.set(String(meta.repeat), meta.deliveries);
    group.metas.push(meta);
  }
  if (file.endsWith(".perf.data")) {
    for (const { us, pkg, fn } of perfSamples(file)) {
      group.busyUs += us;
      add(group.byFunction, fn, us);
      add(group.byPackage, pkg, us);
    }
    continue;
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    if (!node) return;
    const dt = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") return;
    group.busyUs += dt;
    const where = url
      .replace(/^file:\/\/.*?node_modules\//, "")
      .replace(/^file:\/\/.*?\/(dist|services|adapters|bench)\//, "$1/");
    add(group.byFunction, `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}`, dt);
    const pkg =
      url === ""
        ? functionName.startsWith("(")
          ? functionName
          : "node internals"
        : packageOf(url);
    add(group.byPackage, pkg, dt);
  });
  if (!meta) console.error(`${basename(file)}: no .json beside it; counted under "all"`);
}

/** The package a script URL or path belongs to. */
function packageOf(url: string): string {
  if (url.includes("node_modules/"))
    return /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "?";
  if (url.startsWith("node:")) return "node internals";
  if (url.includes("/bench/")) return "bench probe/servers";
  return "switchboard";
}

/** CPU time by symbol from `perf report` (samples of task-clock at the recorded frequency). */
function perfSamples(file: string): { us: number; pkg: string; fn: string }[] {
  const out = execFileSync(
    "perf",
    [
      "report",
      "-i",
      file,
      "--stdio",
      "--sort",
      "dso,sym",
      "-n",
      "-t",
      "\t",
      "--percent-limit",
      "0",
    ],
    { encoding: "utf8", maxBuffer: 256 * 2 ** 20, stdio: ["ignore", "pipe", "ignore"] },
  );
  // task-clock counts ns: the event count over all the samples is the ns per sample.
  const eventCount = Number(/# Event count \(approx\.\): (\d+)/.exec(out)?.[1] ?? 0);
  const rows: { us: number; pkg: string; fn: string }[] = [];
  for (const line of out.split("\n")) {
    if (line.startsWith("#") || line.trim() === "") continue;
    const [, count, dso = "", symbol = ""] = line.split("\t").map((c) => c.trim());
    const samples = Number(count);
    if (!Number.isFinite(samples)) continue;
    const sym = symbol.replace(/^\[[.k]\] /, "");
    let pkg: string;
    if (dso.startsWith("[kernel")) pkg = "kernel";
    else if (dso.startsWith("[JIT]") || /^(JS|LazyCompile|Function|Builtin):/.test(sym)) {
      const url = /\s(\S+):\d+(:\d+)?$/.exec(sym)?.[1] ?? "";
      pkg = url === "" ? "node internals" : packageOf(url);
    } else if (dso === "node")
      pkg = /Scaveng|MarkCompact|Sweep|Marking|Evacuat|Heap::|GCTracer|Concurrent/.test(sym)
        ? "(garbage collector)"
        : /compiler::|Compil|Turbofan|Deoptimiz|Maglev|Parser|Scanner|Zone::|ZoneList|Bytecode/.test(
              sym,
            )
          ? "(jit compiler)"
          : sym.startsWith("Builtins_")
            ? "v8 builtins"
            : "node/v8 C++";
    else pkg = dso;
    const fn = sym.replace(/file:\/\/.*?node_modules\//, "").replace(/\S*\/(dist|bench)\//, "$1/");
    rows.push({
      us: samples,
      pkg,
      fn: `${fn} [${dso.replace(/ tid \d+/, "")}]`,
    });
  }
  const total = rows.reduce((a, r) => a + r.us, 0);
  for (const r of rows) r.us = (r.us * eventCount) / Math.max(1, total) / 1000;
  return rows;
}

const list = [...groups.values()];
const deliveries = (g: Group) => [...g.windows.values()].reduce((a, b) => a + b, 0);
/** µs per delivery when the group's deliveries are known, else ms. */
const perDelivery = (g: Group, us: number) => {
  const d = deliveries(g);
  return d > 0 ? us / d : us / 1000;
};
const unit = list.every((g) => deliveries(g) > 0) ? "µs/delivery" : "ms";
const fmt = (v: number) => (unit === "ms" ? v.toFixed(0) : v.toFixed(3)).padStart(9);

console.log("target: busy CPU ms in the profiled windows, deliveries, µs/delivery; loop delay; GC");
for (const g of list) {
  const d = deliveries(g);
  const loops = g.metas.map((m) => m.loopDelayMs).filter((l) => l !== undefined);
  const gcs = g.metas.map((m) => m.gc).filter((x) => x !== undefined);
  console.log(
    `  ${g.name}: ${(g.busyUs / 1000).toFixed(0)} ms, ${d} deliveries` +
      (d > 0 ? `, ${(g.busyUs / d).toFixed(2)} µs/delivery` : "") +
      (loops.length
        ? `; loop delay p99 ${loops.map((l) => l.p99).join("/")} max ${loops.map((l) => l.max).join("/")} ms`
        : "") +
      (gcs.length
        ? `; GC ${gcs.map((x) => `${x.count}×, ${x.totalMs} ms (max ${x.maxMs})`).join(" / ")}`
        : ""),
  );
}

// Syscalls per delivery, per role (each window once), summed over the repeats.
for (const g of list) {
  const byRepeat = new Map(g.metas.map((m) => [m.repeat, m]));
  const sums = new Map<string, Map<string, number>>();
  for (const m of byRepeat.values()) {
    for (const [role, counts] of Object.entries(m.syscalls ?? {})) {
      const kind = role.replace(/#\d+$/, " (each)");
      const into = sums.get(kind) ?? new Map<string, number>();
      const share = role === kind ? 1 : 1 / m.processes;
      for (const [event, n] of Object.entries(counts)) add(into, event, n * share);
      sums.set(kind, into);
    }
  }
  if (sums.size === 0) continue;
  const d = deliveries(g);
  console.log(`\n${g.name}: syscalls and context switches per delivery`);
  for (const [role, counts] of sums) {
    const cells = [...counts].map(([event, n]) => `${event} ${(n / d).toFixed(3)}`);
    console.log(`  ${role}: ${cells.join(", ")}`);
  }
}

const table = (title: string, pick: (g: Group) => Map<string, number>, n: number) => {
  const keys = new Set(list.flatMap((g) => [...pick(g).keys()]));
  const rows = [...keys].map((key) => {
    const values = list.map((g) => perDelivery(g, pick(g).get(key) ?? 0));
    const diff = values.length >= 2 ? values[1]! - values[0]! : 0;
    return { key, values, diff };
  });
  const sortBy =
    list.length >= 2
      ? (r: (typeof rows)[number]) => Math.abs(r.diff)
      : (r: (typeof rows)[number]) => r.values[0]!;
  rows.sort((a, b) => sortBy(b) - sortBy(a));
  const header =
    list.map((g) => g.name.padStart(9)).join(" ") + (list.length >= 2 ? "      diff" : "");
  console.log(
    `\n${title}, self time in ${unit}${list.length >= 2 ? `, by |${list[1]!.name} − ${list[0]!.name}|` : ""}`,
  );
  console.log(`${header}  what`);
  for (const r of rows.slice(0, n)) {
    const diff =
      list.length >= 2 ? ` ${(r.diff >= 0 ? "+" : "") + r.diff.toFixed(3)}`.padStart(10) : "";
    console.log(`${r.values.map(fmt).join(" ")}${diff}  ${r.key}`);
  }
  const totals = list.map((g) => perDelivery(g, g.busyUs));
  console.log(
    `${totals.map(fmt).join(" ")}${list.length >= 2 ? ` ${(totals[1]! - totals[0]!).toFixed(3)}`.padStart(10) : ""}  (total)`,
  );
};
table("by package", (g) => g.byPackage, 20);
table("by function", (g) => g.byFunction, top);
