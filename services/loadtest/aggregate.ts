import { LoadCounters } from "./counters.js";
import { LatencyHistogram } from "./histogram.js";
import type { WorkerStats } from "./messages.js";

/** One second of the run, all workers together (seconds counted from the publishing start). */
export interface Bucket {
  second: number;
  sent: number;
  delivered: number;
  errors: number;
  latency: LatencyHistogram;
  /** Latest connected gauge of each worker in this second. */
  connected: Map<number, number>;
}

interface WorkerLoad {
  /** CPU µs and wall ms while publishing (or storming). */
  cpuMicros: number;
  wallMs: number;
  /** Highest CPU share of one interval, as a fraction of one core. */
  peak: number;
  /** Sum of the intervals' event-loop p99 (for the average), their count, the worst delay. */
  loopP99SumMs: number;
  intervals: number;
  loopMaxMs: number;
}

/**
 * Folds the workers' interval reports into run totals, a per-second timeline and per-worker
 * CPU and event-loop delay. Pure bookkeeping, no I/O: the report is built from it.
 */
export class RunAggregator extends LoadCounters {
  readonly errors = new Map<string, number>();
  readonly gateways = new Map<string, number>();
  readonly buckets = new Map<number, Bucket>();
  readonly load = new Map<number, WorkerLoad>();
  readonly connected = new Map<number, number>();
  /** Room index -> clients that joined it during setup. */
  members: number[];
  /** Clients that did not become members (connect or join failed). */
  failedClients = 0;
  /** When publishing started and stopped (wall-clock ms); undefined before. */
  startAt: number | undefined;
  stopAt: number | undefined;
  lastDeliveryAt: number | undefined;

  constructor(rooms: number) {
    super(rooms);
    this.members = new Array<number>(rooms).fill(0);
  }

  /** Deliveries the sends so far should produce: every member of the room except the sender. */
  get expected(): number {
    let expected = 0;
    for (let r = 0; r < this.rooms; r++) {
      expected += (this.countedByRoom[r] ?? 0) * (this.members[r] ?? 0) - (this.selfByRoom[r] ?? 0);
    }
    return expected;
  }

  /** Sends that do not count for delivery: refused by the gateway or broker, or failed. */
  get rejected(): number {
    let counted = 0;
    for (const n of this.countedByRoom) counted += n;
    return Math.max(0, this.sent - counted);
  }

  get lost(): number {
    return Math.max(0, this.expected - this.delivered);
  }

  get connectedNow(): number {
    let sum = 0;
    for (const n of this.connected.values()) sum += n;
    return sum;
  }

  get errorCount(): number {
    let sum = 0;
    for (const n of this.errors.values()) sum += n;
    return sum;
  }

  addMembers(members: number[], failed: number): void {
    for (const [r, n] of members.entries()) this.members[r] = (this.members[r] ?? 0) + n;
    this.failedClients += failed;
  }

  add(stats: WorkerStats): void {
    this.sent += stats.sent;
    this.delivered += stats.delivered;
    this.duplicates += stats.duplicates;
    this.outOfOrder += stats.outOfOrder;
    this.connectAttempts += stats.connectAttempts;
    this.connectsOk += stats.connectsOk;
    this.disconnects += stats.disconnects;
    this.reconnects += stats.reconnects;
    for (const [r, n] of stats.countedByRoom.entries())
      this.countedByRoom[r] = (this.countedByRoom[r] ?? 0) + n;
    for (const [r, n] of stats.selfByRoom.entries())
      this.selfByRoom[r] = (this.selfByRoom[r] ?? 0) + n;
    let errors = 0;
    for (const [kind, n] of Object.entries(stats.errors)) {
      this.errors.set(kind, (this.errors.get(kind) ?? 0) + n);
      errors += n;
    }
    for (const [gateway, n] of Object.entries(stats.gateways))
      this.gateways.set(gateway, (this.gateways.get(gateway) ?? 0) + n);
    const latency = LatencyHistogram.decode(stats.latency);
    this.latency.add(latency);
    this.connectTime.add(LatencyHistogram.decode(stats.connectTime));
    this.connected.set(stats.worker, stats.connected);
    if (stats.delivered > 0) this.lastDeliveryAt = Math.max(this.lastDeliveryAt ?? 0, stats.at);

    const origin = this.startAt ?? stats.at;
    // The interval ended at `at`: it belongs to the second it mostly covered.
    const second = Math.floor((stats.at - stats.intervalMs / 2 - origin) / 1000);
    let bucket = this.buckets.get(second);
    if (!bucket) {
      bucket = {
        second,
        sent: 0,
        delivered: 0,
        errors: 0,
        latency: new LatencyHistogram(),
        connected: new Map(),
      };
      this.buckets.set(second, bucket);
    }
    bucket.sent += stats.sent;
    bucket.delivered += stats.delivered;
    bucket.errors += errors;
    bucket.latency.add(latency);
    bucket.connected.set(stats.worker, stats.connected);

    if (this.startAt !== undefined && stats.at > this.startAt && stats.intervalMs > 0) {
      const load = this.load.get(stats.worker) ?? {
        cpuMicros: 0,
        wallMs: 0,
        peak: 0,
        loopP99SumMs: 0,
        intervals: 0,
        loopMaxMs: 0,
      };
      load.cpuMicros += stats.cpuMicros;
      load.wallMs += stats.intervalMs;
      load.peak = Math.max(load.peak, stats.cpuMicros / 1000 / stats.intervalMs);
      load.loopP99SumMs += stats.eventLoopP99Ms;
      load.intervals += 1;
      load.loopMaxMs = Math.max(load.loopMaxMs, stats.eventLoopMaxMs);
      this.load.set(stats.worker, load);
    }
  }
}
