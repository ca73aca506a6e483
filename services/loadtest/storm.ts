import { setTimeout as delay } from "node:timers/promises";
import { io } from "socket.io-client";
import type { AddressPlan } from "./addresses.js";
import { ACK_TIMEOUT_MS, connectOnce, socketOptions } from "./client.js";
import type { WorkerPlan } from "./messages.js";
import { now } from "./payload.js";
import { clientSpec, clientsOf } from "./plan.js";
import { errorKind, type IntervalStats } from "./worker-stats.js";

/**
 * The connect-storm scenario: each of the worker's clients connects, asks `whoami` (so the
 * gateway really served it), disconnects and connects again, until `endAt`; new connections
 * are paced by --ramp. `done` resolves when every loop ended; `stop` ends them early.
 */
export function runStorm(
  plan: WorkerPlan,
  addresses: AddressPlan,
  stats: IntervalStats,
  endAt: number,
): { done: Promise<void>; stop: () => Promise<void> } {
  const { options, index, runId } = plan;
  const mine = clientsOf(index, options.workers, options.clients);
  const intervalMs = (1000 * options.workers) / options.rampPerSec;
  let nextSlot = Date.now();
  let stopped = false;

  /** The next moment this worker may open a connection (a shared pacing, not per client). */
  const paced = async () => {
    const slot = Math.max(nextSlot, Date.now());
    nextSlot = slot + intervalMs;
    if (slot > Date.now()) await delay(slot - Date.now());
  };

  const loop = async (clientIndex: number) => {
    const spec = await clientSpec(options, runId, addresses, clientIndex);
    while (!stopped && Date.now() < endAt) {
      await paced();
      if (stopped || Date.now() >= endAt) break;
      const startedAt = now();
      stats.connectAttempts += 1;
      const socket = io(spec.url, socketOptions(options, spec, false));
      const error = await connectOnce(socket);
      if (error) {
        stats.error(errorKind("connect", error));
        socket.disconnect();
        continue;
      }
      stats.connectTime.record(now() - startedAt);
      try {
        const me = (await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("whoami")) as {
          gateway?: unknown;
        };
        stats.connectsOk += 1;
        stats.landed(typeof me?.gateway === "string" ? me.gateway : "(unknown)");
      } catch (err) {
        stats.error(errorKind("whoami", err));
      }
      socket.disconnect();
    }
  };

  const done = Promise.all(mine.map(loop)).then(() => {});
  return {
    done,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}
