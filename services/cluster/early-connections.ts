import type { SendHandle } from "node:child_process";
import cluster from "node:cluster";
import { SHUTDOWN_MESSAGE } from "../lifecycle.js";
import { isConnectionMessage } from "./handover-messages.js";

/**
 * The primary hands connections to a worker as soon as it is forked, but a worker needs a
 * second or so to load before `setupHandoverWorker` listens for them; IPC messages
 * without a listener are dropped, and so would those clients' first attempts be. The worker
 * entry point holds them from its first line and replays them once the gateway is set up.
 */
interface EarlyState {
  held: Array<[message: unknown, handle: SendHandle]>;
  listener: ((message: unknown, handle: SendHandle) => void) | undefined;
}

// The entry point loads this file before the rest of the gateway; one process-wide state keeps
// every module instance of it (if a loader ever makes two) on the same queue.
const KEY = Symbol.for("switchboard.cluster.earlyConnections");
const registry = globalThis as typeof globalThis & { [KEY]?: EarlyState };
registry[KEY] ??= { held: [], listener: undefined };
const state: EarlyState = registry[KEY];

export function holdEarlyConnections(): void {
  if (!cluster.isWorker || state.listener) return;
  state.listener = (message, handle) => {
    // Only connections and the shutdown request: cluster-adapter traffic has its own listener
    // as soon as the adapter exists, and replaying it would duplicate broadcasts.
    const type = (message as { type?: unknown } | null)?.type;
    if (isConnectionMessage(message) || type === SHUTDOWN_MESSAGE) {
      state.held.push([message, handle]);
    }
  };
  process.on("message", state.listener);
}

/** Call right after `setupHandoverWorker`: replays what arrived meanwhile to the real listeners. */
export function releaseEarlyConnections(): void {
  if (!state.listener) return;
  process.off("message", state.listener);
  state.listener = undefined;
  for (const [message, handle] of state.held.splice(0)) process.emit("message", message, handle);
}
