import { readFileSync } from "node:fs";

/**
 * Summarizes V8 .cpuprofile files (from `BENCH_PROFILE_DIR=dir npm run bench`):
 * self time by function and by package, highest first.
 *   node --import tsx bench/profile.ts dir/*.cpuprofile [--top 30]
 */
interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
const files = args.filter((a, i) => !a.startsWith("--") && (topAt < 0 || i !== topAt + 1));

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    if (!node) return;
    const dt = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (functionName === "(idle)") return;
    total += dt;
    const where = url
      .replace(/^file:\/\/.*?node_modules\//, "")
      .replace(/^file:\/\/.*?\/(dist|services|adapters)\//, "$1/");
    const fn = `${functionName || "(anonymous)"} ${where}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
    const pkg = url.includes("node_modules/")
      ? (/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "?")
      : url.startsWith("node:") || url === ""
        ? functionName.startsWith("(")
          ? functionName
          : "node internals"
        : "switchboard";
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + dt);
  });
}
const print = (title: string, map: Map<string, number>, n: number) => {
  console.log(`\n${title} (self time, % of ${Math.round(total / 1000)} ms busy)`);
  for (const [key, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    console.log(`${((100 * t) / total).toFixed(1).padStart(5)}%  ${key}`);
  }
};
print("by package", byPackage, 15);
print("by function", byFunction, top);
