import type { EncodedHistogram } from "./histogram.js";
import type { LoadtestOptions } from "./options.js";

/** The IPC between the coordinator and its worker processes (child_process.fork). */

/** Everything a worker needs: it derives its own clients from `index` and the options. */
export interface WorkerPlan {
  index: number;
  runId: string;
  options: LoadtestOptions;
}

/** What a worker counted since its previous report (counters are deltas, `connected` a gauge). */
export interface WorkerStats {
  worker: number;
  /** Wall-clock ms when the interval ended. */
  at: number;
  connected: number;
  connectAttempts: number;
  connectsOk: number;
  disconnects: number;
  reconnects: number;
  /** Messages handed to a gateway or broker (publish emitted, command sent). */
  sent: number;
  /** Sends that count for delivery (accepted, or unconfirmed), per room index. */
  countedByRoom: number[];
  /** Of those, sends whose publisher is itself a member of the room (it does not receive them). */
  selfByRoom: number[];
  delivered: number;
  duplicates: number;
  outOfOrder: number;
  errors: Record<string, number>;
  /** Gateway id (whoami) -> clients that landed there. */
  gateways: Record<string, number>;
  latency: EncodedHistogram;
  connectTime: EncodedHistogram;
  /** CPU time this worker used in the interval, µs (user + system). */
  cpuMicros: number;
  /** The worker's event-loop delay in the interval (p99 and max, ms): how late its timers ran. */
  eventLoopP99Ms: number;
  eventLoopMaxMs: number;
  intervalMs: number;
}

export type ToWorker =
  | { type: "plan"; plan: WorkerPlan }
  /** Publishing starts at `at` (wall-clock ms) and ends `durationMs` later. */
  | { type: "start"; at: number; durationMs: number }
  /** Stop publishing now (Ctrl-C or the end), wait for outstanding acks, answer `stopped`. */
  | { type: "stop" }
  /** Report the last interval, close every client, exit. */
  | { type: "finish" };

export type FromWorker =
  | { type: "stats"; stats: WorkerStats }
  /** Setup is over: every client connected (or failed) and joined its room. */
  | { type: "ready"; members: number[]; failed: number }
  /** Its share of the run is out: every message due was sent (storm: every loop ended). */
  | { type: "published" }
  | { type: "stopped" }
  | { type: "done" }
  | { type: "fatal"; message: string };
