import { describe, expect, it } from "vitest";
import { RunAggregator } from "../../services/loadtest/aggregate.js";
import { LatencyHistogram } from "../../services/loadtest/histogram.js";
import type { WorkerStats } from "../../services/loadtest/messages.js";
import { parseLoadtestArgs } from "../../services/loadtest/options.js";
import {
  buildReport,
  checkThresholds,
  formatSummary,
  type LoadtestReport,
} from "../../services/loadtest/report.js";

describe("latency histogram", () => {
  it("gives percentiles of what was recorded, within HdrHistogram's 3 significant digits", () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 1000; ms++) h.record(ms);
    const s = h.summary();
    expect(s.count).toBe(1000);
    expect(s.p50).toBeGreaterThanOrEqual(499);
    expect(s.p50).toBeLessThanOrEqual(501);
    expect(s.p90).toBeCloseTo(900, -1);
    expect(s.p99).toBeCloseTo(990, -1);
    expect(s.p999).toBeCloseTo(999, -1);
    expect(s.max).toBe(1000);
  });

  it("keeps sub-millisecond latencies and the exact maximum", () => {
    const h = new LatencyHistogram();
    h.record(0.25);
    h.record(0.25);
    h.record(12.3456);
    expect(h.summary().p50).toBe(0.25);
    expect(h.summary().max).toBe(12.35);
  });

  it("counts a negative latency (clock skew) as zero, not as an error", () => {
    const h = new LatencyHistogram();
    h.record(-3);
    expect(h.summary()).toMatchObject({ count: 1, max: 0, p99: 0 });
  });

  it("reports zeros, not NaN, when nothing was recorded", () => {
    expect(new LatencyHistogram().summary()).toEqual({
      p50: 0,
      p90: 0,
      p99: 0,
      p999: 0,
      max: 0,
      mean: 0,
      count: 0,
    });
    expect(new LatencyHistogram().distribution()).toEqual([]);
  });

  it("survives the trip between processes and merges with another", () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 0; i < 100; i++) a.record(1);
    b.record(500);
    const merged = new LatencyHistogram();
    merged.add(LatencyHistogram.decode(JSON.parse(JSON.stringify(a.encode()))));
    merged.add(LatencyHistogram.decode(b.encode()));
    expect(merged.count).toBe(101);
    expect(merged.summary().p50).toBe(1);
    expect(merged.summary().max).toBe(500);
  });

  it("draws a percentile curve that rises to the maximum, denser in the tail", () => {
    const h = new LatencyHistogram();
    for (let ms = 1; ms <= 10_000; ms++) h.record(ms / 10);
    const curve = h.distribution();
    const percentiles = curve.map((p) => p.percentile);
    expect(percentiles).toEqual([...percentiles].sort((x, y) => x - y));
    expect(curve.filter((p) => p.percentile >= 99).length).toBeGreaterThanOrEqual(30);
    expect(curve.at(-1)).toEqual({ percentile: 100, ms: 1000 });
    for (let i = 1; i < curve.length; i++) {
      expect(curve[i]!.ms).toBeGreaterThanOrEqual(curve[i - 1]!.ms);
    }
  });
});

const empty = (worker: number, at: number): WorkerStats => ({
  worker,
  at,
  connected: 0,
  connectAttempts: 0,
  connectsOk: 0,
  disconnects: 0,
  reconnects: 0,
  sent: 0,
  countedByRoom: [0, 0],
  selfByRoom: [0, 0],
  delivered: 0,
  duplicates: 0,
  outOfOrder: 0,
  errors: {},
  gateways: {},
  latency: new LatencyHistogram().encode(),
  connectTime: new LatencyHistogram().encode(),
  cpuMicros: 0,
  eventLoopP99Ms: 1,
  eventLoopMaxMs: 2,
  intervalMs: 1000,
});

function latencies(...ms: number[]) {
  const h = new LatencyHistogram();
  for (const v of ms) h.record(v);
  return h.encode();
}

/** Two workers, two rooms of 3 members each; 10 accepted sends per room, 4 of them by members. */
function sampleRun(delivered: number): RunAggregator {
  const agg = new RunAggregator(2);
  agg.addMembers([2, 1], 0);
  agg.addMembers([1, 2], 1);
  agg.startAt = 10_000;
  agg.stopAt = 15_000;
  agg.add({
    ...empty(0, 11_000),
    connected: 3,
    sent: 12,
    countedByRoom: [10, 0],
    selfByRoom: [4, 0],
    delivered: Math.ceil(delivered / 2),
    errors: { "publish:rate_limited": 2 },
    gateways: { "gw-a": 2, "gw-b": 1 },
    latency: latencies(1, 2, 3),
    cpuMicros: 950_000,
  });
  agg.add({
    ...empty(1, 11_000),
    connected: 3,
    sent: 10,
    countedByRoom: [0, 10],
    delivered: Math.floor(delivered / 2),
    duplicates: 1,
    outOfOrder: 2,
    gateways: { "gw-b": 3 },
    latency: latencies(4, 100),
    cpuMicros: 100_000,
  });
  return agg;
}

const options = parseLoadtestArgs(["--clients", "7", "--rooms", "2", "--workers", "2"]);
const meta = {
  options,
  runId: "abcd",
  startedAt: new Date(0),
  interrupted: false,
  cores: 2,
  loadAverage: [1, 1, 1],
  localAddresses: [],
};

describe("load-test report", () => {
  it("expects every member of a room but the sender, and counts the rest as lost", () => {
    // room 0: 10 sends × 3 members − 4 self = 26; room 1: 10 × 3 = 30.
    const report = buildReport(sampleRun(50), meta);
    expect(report).toMatchObject({
      sent: 22,
      expected: 56,
      delivered: 50,
      lost: 6,
      duplicates: 1,
      outOfOrder: 2,
    });
    expect(report.lossPercent).toBeCloseTo((6 / 56) * 100, 3);
    expect(report.sentPerSec).toBe(4.4);
  });

  it("has the JSON contract's fields", () => {
    const report = JSON.parse(JSON.stringify(buildReport(sampleRun(56), meta))) as LoadtestReport;
    for (const field of ["sent", "expected", "delivered", "lost", "duplicates"] as const) {
      expect(typeof report[field]).toBe("number");
    }
    expect(Object.keys(report.latencyMs)).toEqual(
      expect.arrayContaining(["p50", "p90", "p99", "p999", "max"]),
    );
    expect(report.lost).toBe(0);
    expect(report.latencyMs.max).toBe(100);
  });

  it("adds up errors by kind, gateways, members and failed clients", () => {
    const report = buildReport(sampleRun(56), meta);
    expect(report.errors).toEqual({ "publish:rate_limited": 2 });
    expect(report.gateways).toEqual({ "gw-a": 2, "gw-b": 4 });
    expect(report.connections).toMatchObject({ target: 7, members: 6, failed: 1 });
  });

  it("flags a generator worker that used most of a core as saturated", () => {
    const report = buildReport(sampleRun(56), meta);
    expect(report.generator.perWorker).toEqual([
      { worker: 0, cpuPercent: { average: 95, peak: 95 }, eventLoopDelayMs: { p99: 1, max: 2 } },
      { worker: 1, cpuPercent: { average: 10, peak: 10 }, eventLoopDelayMs: { p99: 1, max: 2 } },
    ]);
    expect(report.generator.saturated).toBe(true);
    expect(report.generator.saturation).toBe("worker 0 used 95% of a core");
    expect(formatSummary(report)).toContain("SATURATED");
  });

  it("flags a generator whose event loop ran late, even with little CPU (a starved machine)", () => {
    const agg = new RunAggregator(1);
    agg.startAt = 0;
    for (const at of [1000, 2000]) {
      agg.add({ ...empty(0, at), countedByRoom: [0], selfByRoom: [0], eventLoopP99Ms: 80 });
    }
    const report = buildReport(agg, meta);
    expect(report.generator.perWorker[0]?.cpuPercent.average).toBe(0);
    expect(report.generator.saturated).toBe(true);
    expect(report.generator.saturation).toContain("80 ms late");
  });

  it("does not flag a generator with CPU and time to spare", () => {
    const agg = new RunAggregator(1);
    agg.startAt = 0;
    agg.add({ ...empty(0, 1000), countedByRoom: [0], selfByRoom: [0], cpuMicros: 300_000 });
    expect(buildReport(agg, meta).generator).toMatchObject({ saturated: false });
  });

  it("puts each interval into the second of the run it covered", () => {
    const report = buildReport(sampleRun(56), meta);
    expect(report.timeline).toEqual([
      expect.objectContaining({ t: 0, sentPerSec: 22, deliveredPerSec: 56, connected: 6 }),
    ]);
  });
});

describe("thresholds", () => {
  const base = {
    scenario: "steady" as const,
    sent: 100,
    rejected: 0,
    delivered: 997,
    lost: 3,
    lossPercent: 0.3,
    latencyMs: { p50: 1, p90: 2, p99: 80, p999: 90, max: 100, mean: 1, count: 10 },
    connectMs: { p50: 1, p99: 500, max: 600, count: 10 },
  };

  it("fails a run that lost more than --max-loss, as a count or a percentage", () => {
    expect(
      checkThresholds({
        ...base,
        thresholds: { maxLoss: { kind: "count", value: 2 }, maxP99Ms: undefined },
      }),
    ).toHaveLength(1);
    expect(
      checkThresholds({
        ...base,
        thresholds: { maxLoss: { kind: "count", value: 3 }, maxP99Ms: undefined },
      }),
    ).toEqual([]);
    expect(
      checkThresholds({
        ...base,
        thresholds: { maxLoss: { kind: "percent", value: 0.1 }, maxP99Ms: undefined },
      }),
    ).toHaveLength(1);
  });

  it("fails a run whose p99 is above --max-p99; connect-storm gates the connect time", () => {
    const limits = { maxLoss: undefined, maxP99Ms: 100 };
    expect(checkThresholds({ ...base, thresholds: limits })).toEqual([]);
    expect(checkThresholds({ ...base, scenario: "connect-storm", thresholds: limits })).toEqual([
      "p99 connect time 500 ms is above --max-p99 100 ms",
    ]);
  });

  it("fails a gated run in which nothing was delivered, though nothing counts as lost", () => {
    const failures = checkThresholds({
      ...base,
      rejected: 100,
      delivered: 0,
      lost: 0,
      lossPercent: 0,
      thresholds: { maxLoss: { kind: "count", value: 0 }, maxP99Ms: undefined },
    });
    expect(failures).toEqual([
      "no message was delivered (100 of 100 sends refused or failed, see errors)",
    ]);
  });

  it("counts refused sends apart: not expected, not lost", () => {
    const report = buildReport(sampleRun(56), meta);
    // 22 sent, 20 accepted: the 2 rate-limited ones are refused.
    expect(report.rejected).toBe(2);
  });

  it("marks the report and exits non-zero through the failures list", () => {
    const strict = parseLoadtestArgs(["--rooms", "2", "--max-loss", "0"]);
    const report = buildReport(sampleRun(50), { ...meta, options: strict });
    expect(report.thresholds.failures).toEqual(["lost 6 messages, more than --max-loss 0"]);
    expect(formatSummary(report)).toContain("FAIL");
  });
});

describe("HTML report", () => {
  it("is one self-contained page: the chart library inlined, nothing fetched", async () => {
    const { renderHtml } = await import("../../services/loadtest/html.js");
    const html = renderHtml(buildReport(sampleRun(56), meta));
    expect(html).not.toMatch(/<script[^>]+src=/i);
    expect(html).not.toMatch(/<link[^>]+href=/i);
    expect(html).toContain("uPlot");
    expect(html).toMatch(/<script id="report" type="application\/json">/);
  });

  it("keeps a hostile label from closing the script or injecting markup", async () => {
    const { renderHtml } = await import("../../services/loadtest/html.js");
    const label = `</script><img src=x onerror=alert(1)>`;
    const report = buildReport(sampleRun(56), {
      ...meta,
      options: { ...meta.options, label },
    });
    const html = renderHtml(report);
    expect(html).not.toContain("<img src=x");
    const json = /<script id="report" type="application\/json">(.*?)<\/script>/s.exec(html)?.[1];
    expect(JSON.parse(json ?? "null").label).toBe(label);
  });
});
