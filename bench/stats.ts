import { type LatencySummary as HistogramSummary, round } from "../services/loadtest/histogram.js";

export { round };

/**
 * Latency summary in milliseconds: the loadtest's percentile fields, computed here by nearest
 * rank over the raw samples (exact, where the loadtest's histogram keeps 3 significant digits).
 */
export type LatencySummary = Pick<HistogramSummary, "p50" | "p90" | "p99" | "p999" | "max">;

export function summarize(samples: number[]): LatencySummary {
  if (samples.length === 0)
    return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, p999: Number.NaN, max: Number.NaN };
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) =>
    round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN);
  return {
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    p999: at(0.999),
    max: round(sorted[sorted.length - 1] ?? Number.NaN),
  };
}

/** Wall-clock milliseconds with sub-ms precision, comparable across sockets of this process. */
export const now = () => performance.timeOrigin + performance.now();
