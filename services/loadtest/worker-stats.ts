import { monitorEventLoopDelay } from "node:perf_hooks";
import { LoadCounters } from "./counters.js";
import type { WorkerStats } from "./messages.js";

/** A worker's counters since its last report; `take` returns them and starts over. */
export class IntervalStats extends LoadCounters {
  private errors = new Map<string, number>();
  private gateways = new Map<string, number>();
  private lastAt = Date.now();
  private lastCpu = process.cpuUsage();
  /** A late event loop delays every receive timestamp: the report says how late it ran. */
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });

  constructor(rooms: number) {
    super(rooms);
    this.loopDelay.enable();
  }

  /** Counts one error of `kind` (`connect:…`, `join:…`, `publish:…`, `disconnect:…`). */
  error(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  landed(gateway: string): void {
    this.gateways.set(gateway, (this.gateways.get(gateway) ?? 0) + 1);
  }

  take(worker: number, connected: number): WorkerStats {
    const at = Date.now();
    const cpu = process.cpuUsage(this.lastCpu);
    this.lastCpu = process.cpuUsage();
    const stats: WorkerStats = {
      worker,
      at,
      connected,
      connectAttempts: this.connectAttempts,
      connectsOk: this.connectsOk,
      disconnects: this.disconnects,
      reconnects: this.reconnects,
      sent: this.sent,
      countedByRoom: this.countedByRoom,
      selfByRoom: this.selfByRoom,
      delivered: this.delivered,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      errors: Object.fromEntries(this.errors),
      gateways: Object.fromEntries(this.gateways),
      latency: this.latency.encode(),
      connectTime: this.connectTime.encode(),
      cpuMicros: cpu.user + cpu.system,
      eventLoopP99Ms: this.loopDelay.count > 0 ? this.loopDelay.percentile(99) / 1e6 : 0,
      eventLoopMaxMs: this.loopDelay.count > 0 ? this.loopDelay.max / 1e6 : 0,
      intervalMs: at - this.lastAt,
    };
    this.lastAt = at;
    this.resetCounters();
    this.loopDelay.reset();
    this.errors = new Map();
    this.gateways = new Map();
    return stats;
  }
}

/**
 * A short, stable error kind from an error or reason: `connect:websocket error (ECONNREFUSED)`.
 * Socket.IO's transport errors carry the network error in `description` (an Error, or the
 * WebSocket's error event holding it in `error`).
 */
export function errorKind(prefix: string, reason: unknown): string {
  let text: string;
  if (reason instanceof Error) {
    const code = (reason as NodeJS.ErrnoException).code;
    const cause = networkCode((reason as { description?: unknown }).description);
    text = code ?? (cause ? `${reason.message} (${cause})` : reason.message);
  } else {
    text = String(reason);
  }
  return `${prefix}:${text.replace(/\s+/g, " ").slice(0, 80)}`;
}

function networkCode(description: unknown): string | undefined {
  if (typeof description !== "object" || description === null) return undefined;
  const d = description as { code?: unknown; error?: { code?: unknown } };
  const code = d.code ?? d.error?.code;
  return typeof code === "string" ? code : undefined;
}
