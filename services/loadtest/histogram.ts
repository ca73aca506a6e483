import * as hdr from "hdr-histogram-js";

/** Percentiles of a latency histogram, in milliseconds (3 significant digits, HdrHistogram). */
export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
  count: number;
}

/** One point of the latency distribution chart: at `percentile` (0-100), `ms` or less. */
export interface DistributionPoint {
  percentile: number;
  ms: number;
}

/** Values are recorded in microseconds: sub-millisecond resolution, up to an hour. */
const HIGHEST_US = 3_600_000_000;
const SIGNIFICANT_DIGITS = 3;

/**
 * A latency histogram over hdr-histogram-js. Workers record into one per interval and ship it
 * encoded (`encode`); the coordinator merges them (`add`). The exact maximum is kept beside the
 * histogram, whose own max is rounded to its bucket.
 */
export class LatencyHistogram {
  private readonly histogram = hdr.build({
    bitBucketSize: 64,
    autoResize: true,
    lowestDiscernibleValue: 1,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
  });
  private maxUs = 0;

  /** Records one latency in milliseconds; negative values (clock skew) count as 0. */
  record(ms: number): void {
    const us = Math.min(HIGHEST_US, Math.max(0, Math.round(ms * 1000)));
    this.histogram.recordValue(us);
    if (us > this.maxUs) this.maxUs = us;
  }

  get count(): number {
    return this.histogram.totalCount;
  }

  add(other: LatencyHistogram): void {
    this.histogram.add(other.histogram);
    if (other.maxUs > this.maxUs) this.maxUs = other.maxUs;
  }

  reset(): void {
    this.histogram.reset();
    this.maxUs = 0;
  }

  /** Milliseconds at or below which `percentile` (0-100) of the values fall; 0 when empty. */
  at(percentile: number): number {
    if (this.count === 0) return 0;
    return Math.min(this.maxUs, this.histogram.getValueAtPercentile(percentile)) / 1000;
  }

  summary(): LatencySummary {
    const count = this.count;
    return {
      p50: round(this.at(50)),
      p90: round(this.at(90)),
      p99: round(this.at(99)),
      p999: round(this.at(99.9)),
      max: round(this.maxUs / 1000),
      mean: round(count === 0 ? 0 : this.histogram.mean / 1000),
      count,
    };
  }

  /**
   * The percentile curve HdrHistogram plots: percentiles spaced so that the tail (99%, 99.9%,
   * 99.99%…) gets as many points as the body.
   */
  distribution(): DistributionPoint[] {
    if (this.count === 0) return [];
    const points: DistributionPoint[] = [];
    for (let level = 0; level <= 5; level++) {
      const base = 100 - 100 / 10 ** level; // 0, 90, 99, 99.9, …
      const span = 100 / 10 ** level - 100 / 10 ** (level + 1);
      for (let step = 0; step < 10; step++) {
        const percentile = base + (span * step) / 10;
        points.push({ percentile: round(percentile, 5), ms: round(this.at(percentile)) });
      }
    }
    points.push({ percentile: 100, ms: round(this.maxUs / 1000) });
    return points;
  }

  /** A compact string (compressed HdrHistogram encoding) to send between processes. */
  encode(): EncodedHistogram {
    return { hdr: hdr.encodeIntoCompressedBase64(this.histogram), maxUs: this.maxUs };
  }

  static decode(encoded: EncodedHistogram): LatencyHistogram {
    const result = new LatencyHistogram();
    if (encoded.hdr.length > 0) {
      const decoded = hdr.decodeFromCompressedBase64(encoded.hdr, 64, false);
      result.histogram.add(decoded);
    }
    result.maxUs = encoded.maxUs;
    return result;
  }
}

export interface EncodedHistogram {
  hdr: string;
  maxUs: number;
}

export const round = (value: number, digits = 2): number =>
  Math.round(value * 10 ** digits) / 10 ** digits;
