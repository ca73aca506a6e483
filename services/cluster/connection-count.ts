import cluster, { type Worker } from "node:cluster";
import { withTimeout } from "../../core/retry.js";
import type { SharedConnectionCount } from "../gateway/admission.js";

/**
 * MAX_CONNECTIONS_PER_IP for the whole `switchboard cluster` port: each worker still decides on
 * its own handshakes (with the client address it derives, TRUSTED_PROXIES included), but the
 * counts live in the primary, which adds up every worker's open connections per address.
 */

const COUNT = "switchboard:ip-count";
const OPENED = "switchboard:ip-opened";
const CLOSED = "switchboard:ip-closed";
const REPLY = "switchboard:ip-reply";

/** How long a worker waits for the primary's answer before falling back to its own count. */
const ANSWER_TIMEOUT_MS = 5000;

interface CountMessage {
  type: typeof COUNT | typeof OPENED | typeof CLOSED;
  address: string;
  id?: number;
}

interface ReplyMessage {
  type: typeof REPLY;
  id: number;
  count: number;
}

function isCountMessage(message: unknown): message is CountMessage {
  const m = message as Partial<CountMessage> | null;
  return (
    (m?.type === COUNT || m?.type === OPENED || m?.type === CLOSED) && typeof m.address === "string"
  );
}

/** In the primary: keeps every worker's open connections per address; forgets a worker that exits. */
export function countConnectionsForWorkers(): { countOf(address: string): number } {
  const byWorker = new Map<Worker, Map<string, number>>();
  const countOf = (address: string) => {
    let total = 0;
    for (const counts of byWorker.values()) total += counts.get(address) ?? 0;
    return total;
  };
  cluster.on("message", (worker, message: unknown) => {
    if (!isCountMessage(message)) return;
    let counts = byWorker.get(worker);
    if (!counts) {
      counts = new Map();
      byWorker.set(worker, counts);
    }
    const { address } = message;
    if (message.type === OPENED) counts.set(address, (counts.get(address) ?? 0) + 1);
    if (message.type === CLOSED) {
      const left = (counts.get(address) ?? 0) - 1;
      if (left > 0) counts.set(address, left);
      else counts.delete(address);
    }
    if (message.id !== undefined && worker.isConnected()) {
      const reply: ReplyMessage = { type: REPLY, id: message.id, count: countOf(address) };
      worker.send(reply);
    }
  });
  cluster.on("exit", (worker) => byWorker.delete(worker));
  return { countOf };
}

/** In a worker: the count the primary keeps. */
export function primaryConnectionCount(): SharedConnectionCount {
  let nextId = 0;
  const pending = new Map<number, (count: number) => void>();
  process.on("message", (message: unknown) => {
    const m = message as Partial<ReplyMessage> | null;
    if (m?.type !== REPLY || typeof m.id !== "number" || typeof m.count !== "number") return;
    pending.get(m.id)?.(m.count);
    pending.delete(m.id);
  });
  const ask = (type: typeof COUNT | typeof OPENED, address: string) => {
    const id = nextId++;
    const answer = new Promise<number>((resolve, reject) => {
      if (!process.send || !process.connected) {
        return reject(new Error("no IPC channel to the cluster primary"));
      }
      pending.set(id, resolve);
      const message: CountMessage = { type, address, id };
      process.send(message);
    });
    return withTimeout(answer, ANSWER_TIMEOUT_MS, () => {
      pending.delete(id);
      return new Error(`the cluster primary did not answer in ${ANSWER_TIMEOUT_MS} ms`);
    });
  };
  return {
    count: (address) => ask(COUNT, address),
    opened: (address) => ask(OPENED, address),
    closed: (address) => {
      const message: CountMessage = { type: CLOSED, address };
      process.send?.(message);
    },
  };
}
