import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { type BenchBackplane, scrape, startGateways } from "./gateways.js";
import { runMain } from "./procs.js";
import { type RoomLoadResult, roomLoad } from "./room-load.js";
import { round } from "./stats.js";

/**
 * `npm run bench`: side-by-side measurements in one run. Not a test: it asserts nothing, it
 * prints a table and writes .bench/results-<date>.json. Every loop is bounded in count and time.
 */

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 8000);

interface Row {
  scenario: string;
  variant: string;
  result: RoomLoadResult;
  extra?: Record<string, number>;
}

const rows: Row[] = [];

function print(row: Row) {
  const r = row.result;
  const extra = row.extra ? ` ${JSON.stringify(row.extra)}` : "";
  console.log(
    `${row.scenario.padEnd(22)} ${row.variant.padEnd(14)} sent=${r.sent} delivered=${r.delivered}/${r.expected} lost=${r.lost} ` +
      `dup=${r.duplicates} rate=${r.deliveredPerSec}/s p50=${r.latencyMs.p50}ms p99=${r.latencyMs.p99}ms max=${r.latencyMs.max}ms${extra}`,
  );
}

/** amqp vs redis: same 2 gateways, same clients, same offered load, rooms spanning both gateways. */
async function backplaneThroughput(backplane: BenchBackplane, ratePerSec: number) {
  const cluster = await startGateways(backplane, 2);
  try {
    const rooms = ["bench:0", "bench:1", "bench:2", "bench:3", "bench:4"];
    const result = await roomLoad({
      urls: cluster.urls,
      membersPerGateway: 25,
      roomOf: (_g, i) => rooms[i % rooms.length]!,
      rooms,
      publishersPerGateway: 2,
      ratePerSec,
      durationMs: DURATION_MS,
    });
    const row = { scenario: `throughput@${ratePerSec}/s`, variant: backplane, result };
    rows.push(row);
    print(row);
  } finally {
    await cluster.stop();
  }
}

/** Rooms split across gateways: what each gateway takes in from the broker, routing on vs off. */
async function roomRouting(backplane: "amqp" | "amqp-fanout") {
  const cluster = await startGateways(backplane, 2);
  try {
    const roomsA = ["split:a0", "split:a1", "split:a2", "split:a3", "split:a4"];
    const roomsB = ["split:b0", "split:b1", "split:b2", "split:b3", "split:b4"];
    const before = await Promise.all(
      cluster.urls.map((u) => scrape(u, "switchboard_backplane_received_broadcasts_total")),
    );
    const result = await roomLoad({
      urls: cluster.urls,
      membersPerGateway: 10,
      roomOf: (g, i) => (g === 0 ? roomsA : roomsB)[i % 5]!,
      rooms: [...roomsA, ...roomsB],
      publishersPerGateway: 1,
      ratePerSec: 200,
      durationMs: DURATION_MS,
    });
    const after = await Promise.all(
      cluster.urls.map((u) => scrape(u, "switchboard_backplane_received_broadcasts_total")),
    );
    const inbound = after.map((n, i) => n - (before[i] ?? 0));
    const row = {
      scenario: "room-routing",
      variant: backplane === "amqp" ? "routing on" : "fan-out",
      result,
      extra: { inboundPerGateway: round(inbound.reduce((a, b) => a + b, 0) / inbound.length, 0) },
    };
    rows.push(row);
    print(row);
    return row.extra.inboundPerGateway;
  } finally {
    await cluster.stop();
  }
}

async function main() {
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, ${round(totalmem() / 2 ** 30, 0)} GiB, Node ${process.version}`;
  console.log(`Switchboard benchmarks — ${new Date().toISOString()} — ${machine}\n`);
  const ratios: Record<string, number> = {};
  for (const rate of [500, 1500, 4000]) {
    await backplaneThroughput("redis", rate);
    await backplaneThroughput("amqp", rate);
    const [redis, amqp] = rows.slice(-2).map((r) => r.result);
    ratios[`amqp/redis delivered/s @${rate}/s`] = round(
      amqp!.deliveredPerSec / redis!.deliveredPerSec,
    );
    ratios[`amqp/redis p99 @${rate}/s`] = round(amqp!.latencyMs.p99 / redis!.latencyMs.p99);
  }
  const on = await roomRouting("amqp");
  const off = await roomRouting("amqp-fanout");
  ratios["inbound routing on / fan-out"] = round(on / off);
  const extra = await import("./publish-paths.js").then(
    (m) => m.publishPaths(DURATION_MS),
    (err: unknown) => {
      console.log(`publish paths skipped: ${(err as Error).message}`);
      return undefined;
    },
  );
  if (extra) Object.assign(ratios, extra.ratios);
  console.log("\nratios:", ratios);
  mkdirSync(".bench", { recursive: true });
  const file = `.bench/results-${new Date().toISOString().slice(0, 10)}.json`;
  writeFileSync(
    file,
    JSON.stringify(
      { date: new Date().toISOString(), machine, rows, ratios, publishPaths: extra?.rows },
      null,
      2,
    ),
  );
  console.log(`written to ${file}`);
}

runMain(main);
