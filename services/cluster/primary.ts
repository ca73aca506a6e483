import cluster, { type Worker } from "node:cluster";
import { backoffDelay } from "../../core/retry.js";
import type { Config } from "../gateway/config.js";
import { createLogger } from "../gateway/logger.js";
import { exitOnSignals, isIpcMessage, READY_MESSAGE, SHUTDOWN_MESSAGE } from "../lifecycle.js";
import { setupStickyPrimary } from "./handover.js";

/**
 * `switchboard cluster`: a primary that owns the port and forks `WORKERS` gateway workers.
 * @socket.io/sticky hands each connection to one worker (HTTP long-polling stays on its worker);
 * @socket.io/cluster-adapter relays broadcasts between workers through this primary, unless the
 * workers use a network backplane (BACKPLANE=redis…), which then spans hosts too.
 */
const LOADING_WEIGHT = 1_000_000;

export async function runClusterPrimary(config: Config): Promise<void> {
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  const workerBackplane = config.backplane === "memory" ? "cluster" : config.backplane;
  const indexOf = new Map<Worker, number>();
  const crashes = new Map<number, number[]>();
  let stopping = false;

  const httpServer = setupStickyPrimary();

  const fork = (index: number) => {
    const worker = cluster.fork({
      GATEWAY_ID: `${config.gatewayId}-w${index}`,
      BACKPLANE: workerBackplane,
    });
    indexOf.set(worker, index);
    // sticky's least-connection balancer reads `clientsCount`: a worker still loading looks
    // full, so it gets connections only when no other worker is alive.
    const stickyWorker = worker as Worker & { clientsCount?: number };
    stickyWorker.clientsCount = LOADING_WEIGHT;
    worker.on("message", (message: unknown) => {
      if (!isIpcMessage(message, READY_MESSAGE)) return;
      stickyWorker.clientsCount = (stickyWorker.clientsCount ?? LOADING_WEIGHT) - LOADING_WEIGHT;
      logger.info({ worker: worker.process.pid, index }, "worker ready");
    });
    logger.info({ worker: worker.process.pid, index }, "worker started");
  };

  cluster.on("exit", (worker, code, signal) => {
    const index = indexOf.get(worker) ?? 0;
    indexOf.delete(worker);
    if (stopping) return;
    // A worker that keeps dying right after start is restarted with a growing delay.
    const now = Date.now();
    const recent = (crashes.get(index) ?? []).filter((t) => now - t < 60_000);
    recent.push(now);
    crashes.set(index, recent);
    const delayMs = backoffDelay(recent.length - 1, { initialMs: 100, maxMs: 10_000 });
    logger.warn(
      { worker: worker.process.pid, index, code, signal, restartInMs: delayMs },
      "worker died",
    );
    setTimeout(() => {
      if (!stopping) fork(index);
    }, delayMs);
  });

  for (let i = 0; i < config.workers; i++) fork(i);

  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  logger.info(
    { port: config.port, host: config.host, workers: config.workers, backplane: workerBackplane },
    "cluster listening",
  );

  exitOnSignals(logger, config.shutdownTimeoutMs, async () => {
    stopping = true;
    // Workers drain (their /readyz says 503 through this primary's port), then exit.
    const alive = [...indexOf.keys()];
    await Promise.all(
      alive.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            worker.once("exit", () => resolve());
            // A message, not a signal: a terminal's Ctrl-C already signals the whole process group.
            worker.send({ type: SHUTDOWN_MESSAGE });
          }),
      ),
    );
    // Connections handed to workers are gone with them; stop listening and let the process exit.
    httpServer.close();
  });
}
