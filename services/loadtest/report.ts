import type { RunAggregator } from "./aggregate.js";
import { type DistributionPoint, type LatencySummary, round } from "./histogram.js";
import type { LoadtestOptions, LossLimit } from "./options.js";

/** A worker using this share of one core (on average while publishing) is the bottleneck. */
export const SATURATED_CPU = 0.85;
/**
 * A worker whose event loop ran this late (average of the per-second p99s) timestamps messages
 * late: the latencies then include the generator's own delay, whatever its CPU says (a machine
 * busy with other work starves the generator without its CPU share rising).
 */
export const SATURATED_LOOP_DELAY_MS = 50;

export interface WorkerLoadReport {
  worker: number;
  /** CPU as a percentage of one core while publishing: average and busiest second. */
  cpuPercent: { average: number; peak: number };
  /** Event-loop delay while publishing: average of the per-second p99s, and the worst. */
  eventLoopDelayMs: { p99: number; max: number };
}

export interface TimelinePoint {
  /** Seconds since publishing started (negative: connecting). */
  t: number;
  sentPerSec: number;
  deliveredPerSec: number;
  /** Null in a second without deliveries. */
  p50: number | null;
  p99: number | null;
  connected: number;
  errors: number;
}

/**
 * The report `--json` writes. `sent`, `expected`, `delivered`, `lost`, `duplicates` and
 * `latencyMs` are a fixed contract (docs/ARCHITECTURE.md, "Fixed names"); the rest may grow.
 */
export interface LoadtestReport {
  version: 1;
  scenario: LoadtestOptions["scenario"];
  label: string | undefined;
  runId: string;
  startedAt: string;
  /** Wall time spent publishing (or storming), ms. */
  elapsedMs: number;
  interrupted: boolean;
  target: {
    urls: string[];
    transport: LoadtestOptions["transport"];
    publishVia: LoadtestOptions["publishVia"];
    clients: number;
    rooms: number;
    rate: number;
    publishers: number;
    payloadBytes: number;
    durationMs: number;
    rampPerSec: number;
    workers: number;
    auth: "token-secret" | "token" | "none";
    localAddresses: string[];
  };
  sent: number;
  /** Deliveries the accepted sends should produce: every member of the room but the sender. */
  expected: number;
  /** Distinct messages received (duplicates not counted). */
  delivered: number;
  /** Sends the gateway or broker refused or that failed (see `errors`): not expected. */
  rejected: number;
  lost: number;
  lossPercent: number;
  duplicates: number;
  outOfOrder: number;
  sentPerSec: number;
  deliveredPerSec: number;
  latencyMs: LatencySummary;
  connectMs: { p50: number; p99: number; max: number; count: number };
  connections: {
    target: number;
    /** Clients that connected and joined their room during setup. */
    members: number;
    failed: number;
    attempts: number;
    accepted: number;
    acceptedPerSec: number;
    disconnects: number;
    reconnects: number;
  };
  errors: Record<string, number>;
  /** Gateway id (from `whoami`) -> clients (connect-storm: connections) it served. */
  gateways: Record<string, number>;
  generator: {
    workers: number;
    cores: number;
    perWorker: WorkerLoadReport[];
    /** True when a worker was busy or late enough that the figures measure the generator. */
    saturated: boolean;
    /** Why `saturated` is true, in a sentence. */
    saturation: string | undefined;
    /** The machine's 1/5/15-minute load averages at the end (above `cores`: it was busy). */
    loadAverage: number[];
  };
  thresholds: {
    maxLoss: LossLimit | undefined;
    maxP99Ms: number | undefined;
    /** One sentence per exceeded limit; empty when the run is within its limits. */
    failures: string[];
  };
  timeline: TimelinePoint[];
  /** The latency percentile curve (HdrHistogram style). */
  distribution: DistributionPoint[];
}

export interface ReportMeta {
  options: LoadtestOptions;
  runId: string;
  startedAt: Date;
  interrupted: boolean;
  cores: number;
  loadAverage: number[];
  localAddresses: string[];
}

export function buildReport(agg: RunAggregator, meta: ReportMeta): LoadtestReport {
  const { options } = meta;
  const start = agg.startAt ?? Date.now();
  const stop = agg.stopAt ?? Date.now();
  const elapsedMs = Math.max(0, stop - start);
  const expected = agg.expected;
  const lost = agg.lost;
  const deliveryWindowMs = Math.max(elapsedMs, (agg.lastDeliveryAt ?? stop) - start);
  const perSec = (n: number, ms: number) => (ms > 0 ? round((n * 1000) / ms, 1) : 0);
  const latencyMs = agg.latency.summary();
  const connect = agg.connectTime.summary();
  const perWorker: WorkerLoadReport[] = [...agg.load.entries()]
    .sort(([a], [b]) => a - b)
    .map(([worker, load]) => ({
      worker,
      cpuPercent: {
        average: round(load.wallMs > 0 ? (load.cpuMicros / 1000 / load.wallMs) * 100 : 0, 1),
        peak: round(load.peak * 100, 1),
      },
      eventLoopDelayMs: {
        p99: round(load.intervals > 0 ? load.loopP99SumMs / load.intervals : 0, 1),
        max: round(load.loopMaxMs, 1),
      },
    }));
  const members = agg.members.reduce((a, b) => a + b, 0);
  const report: LoadtestReport = {
    version: 1,
    scenario: options.scenario,
    label: options.label,
    runId: meta.runId,
    startedAt: meta.startedAt.toISOString(),
    elapsedMs,
    interrupted: meta.interrupted,
    target: {
      urls: options.urls,
      transport: options.transport,
      publishVia: options.publishVia,
      clients: options.clients,
      rooms: options.rooms,
      rate: options.rate,
      publishers: options.publishVia === "client" ? options.publishers : options.workers,
      payloadBytes: options.payloadBytes,
      durationMs: options.durationMs,
      rampPerSec: options.rampPerSec,
      workers: options.workers,
      auth: options.tokenSecret ? "token-secret" : options.token ? "token" : "none",
      localAddresses: meta.localAddresses,
    },
    sent: agg.sent,
    expected,
    delivered: agg.delivered,
    rejected: agg.rejected,
    lost,
    lossPercent: expected > 0 ? round((lost / expected) * 100, 4) : 0,
    duplicates: agg.duplicates,
    outOfOrder: agg.outOfOrder,
    sentPerSec: perSec(agg.sent, elapsedMs),
    deliveredPerSec: perSec(agg.delivered, deliveryWindowMs),
    latencyMs,
    connectMs: { p50: connect.p50, p99: connect.p99, max: connect.max, count: connect.count },
    connections: {
      target: options.clients,
      members,
      failed: agg.failedClients,
      attempts: agg.connectAttempts,
      accepted: agg.connectsOk,
      acceptedPerSec: perSec(agg.connectsOk, options.scenario === "connect-storm" ? elapsedMs : 0),
      disconnects: agg.disconnects,
      reconnects: agg.reconnects,
    },
    errors: Object.fromEntries([...agg.errors.entries()].sort(([, a], [, b]) => b - a)),
    gateways: Object.fromEntries(
      [...agg.gateways.entries()].sort(([a], [b]) => a.localeCompare(b)),
    ),
    generator: {
      workers: options.workers,
      cores: meta.cores,
      perWorker,
      ...saturation(perWorker),
      loadAverage: meta.loadAverage.map((l) => round(l, 2)),
    },
    thresholds: { maxLoss: options.maxLoss, maxP99Ms: options.maxP99Ms, failures: [] },
    timeline: timeline(agg),
    distribution: agg.latency.distribution(),
  };
  report.thresholds.failures = checkThresholds(report);
  return report;
}

function saturation(perWorker: WorkerLoadReport[]): {
  saturated: boolean;
  saturation: string | undefined;
} {
  const busy = perWorker.find((w) => w.cpuPercent.average >= SATURATED_CPU * 100);
  if (busy) {
    return {
      saturated: true,
      saturation: `worker ${busy.worker} used ${busy.cpuPercent.average}% of a core`,
    };
  }
  const late = perWorker.find((w) => w.eventLoopDelayMs.p99 >= SATURATED_LOOP_DELAY_MS);
  if (late) {
    return {
      saturated: true,
      saturation: `worker ${late.worker}'s event loop ran up to ${late.eventLoopDelayMs.p99} ms late (p99)`,
    };
  }
  return { saturated: false, saturation: undefined };
}

function timeline(agg: RunAggregator): TimelinePoint[] {
  return [...agg.buckets.values()]
    .sort((a, b) => a.second - b.second)
    .map((b) => {
      let connected = 0;
      for (const n of b.connected.values()) connected += n;
      return {
        t: b.second,
        sentPerSec: b.sent,
        deliveredPerSec: b.delivered,
        p50: b.latency.count > 0 ? round(b.latency.at(50)) : null,
        p99: b.latency.count > 0 ? round(b.latency.at(99)) : null,
        connected,
        errors: b.errors,
      };
    });
}

/** The limits a report exceeds, one sentence each. */
export function checkThresholds(
  report: Pick<
    LoadtestReport,
    | "scenario"
    | "sent"
    | "rejected"
    | "delivered"
    | "lost"
    | "lossPercent"
    | "latencyMs"
    | "connectMs"
  > & {
    thresholds: Pick<LoadtestReport["thresholds"], "maxLoss" | "maxP99Ms">;
  },
): string[] {
  const failures: string[] = [];
  const { maxLoss, maxP99Ms } = report.thresholds;
  // Refused sends are not expected, so they are not "lost": without this, a run in which every
  // publish failed would pass the gate with nothing measured.
  if (
    (maxLoss || maxP99Ms !== undefined) &&
    report.scenario === "steady" &&
    report.sent > 0 &&
    report.delivered === 0
  ) {
    failures.push(
      `no message was delivered (${report.rejected} of ${report.sent} sends refused or failed, see errors)`,
    );
  }
  if (maxLoss?.kind === "count" && report.lost > maxLoss.value) {
    failures.push(`lost ${report.lost} messages, more than --max-loss ${maxLoss.value}`);
  }
  if (maxLoss?.kind === "percent" && report.lossPercent > maxLoss.value) {
    failures.push(
      `lost ${report.lossPercent}% of the messages, more than --max-loss ${maxLoss.value}%`,
    );
  }
  if (maxP99Ms !== undefined) {
    const [what, p99] =
      report.scenario === "connect-storm"
        ? ["connect time", report.connectMs.p99]
        : ["latency", report.latencyMs.p99];
    if (p99 > maxP99Ms) failures.push(`p99 ${what} ${p99} ms is above --max-p99 ${maxP99Ms} ms`);
  }
  return failures;
}

/** The summary printed at the end of a run, a few lines a person reads. */
export function formatSummary(report: LoadtestReport): string {
  const lines: string[] = [];
  const l = report.latencyMs;
  const c = report.connections;
  const title = `switchboard loadtest ${report.scenario}${report.label ? ` (${report.label})` : ""}`;
  lines.push(`${title}${report.interrupted ? " — interrupted" : ""}`);
  lines.push(
    `  target     ${report.target.urls.join(",")} ${report.target.transport}, ${c.target} clients` +
      (report.scenario === "steady"
        ? `, ${report.target.rooms} rooms, ${report.target.rate} msgs/s via ${report.target.publishVia}`
        : ""),
  );
  if (report.scenario === "steady") {
    lines.push(
      `  messages   sent ${report.sent} (${report.rejected} refused), expected ${report.expected}, ` +
        `delivered ${report.delivered}, ` +
        `lost ${report.lost} (${report.lossPercent}%), duplicates ${report.duplicates}, ` +
        `out of order ${report.outOfOrder}`,
    );
    lines.push(
      `  rate       ${report.sentPerSec} msgs/s sent, ${report.deliveredPerSec} msgs/s delivered`,
    );
    lines.push(
      `  latency    p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, p99.9 ${l.p999} ms, max ${l.max} ms`,
    );
  } else {
    lines.push(
      `  connects   ${c.accepted} accepted of ${c.attempts} attempts, ${c.acceptedPerSec}/s`,
    );
  }
  lines.push(
    `  clients    ${c.members} joined, ${c.failed} failed, ${c.disconnects} disconnects, ` +
      `${c.reconnects} reconnects; connect p50 ${report.connectMs.p50} ms, p99 ${report.connectMs.p99} ms`,
  );
  const gateways = Object.entries(report.gateways);
  if (gateways.length > 0) {
    lines.push(`  gateways   ${gateways.map(([id, n]) => `${id}: ${n}`).join(", ")}`);
  }
  const errors = Object.entries(report.errors);
  lines.push(
    `  errors     ${errors.length === 0 ? "none" : errors.map(([k, n]) => `${k} ×${n}`).join(", ")}`,
  );
  const g = report.generator;
  const cpu = g.perWorker.map((w) => `${w.cpuPercent.average}%`).join(", ");
  const loop = g.perWorker.map((w) => `${w.eventLoopDelayMs.p99} ms`).join(", ");
  lines.push(
    `  generator  ${g.workers} workers, CPU ${cpu || "n/a"} of a core, event-loop delay p99 ` +
      `${loop || "n/a"}; load average ${g.loadAverage.join(" ")} on ${g.cores} cores`,
  );
  if (g.saturated) {
    lines.push(
      `  SATURATED  ${g.saturation}: the figures include the generator's own delay; ` +
        "add --workers, a quieter machine or more machines",
    );
  }
  for (const failure of report.thresholds.failures) lines.push(`  FAIL       ${failure}`);
  return `${lines.join("\n")}\n`;
}
