import cluster, { type Worker } from "node:cluster";
import type { Server } from "node:net";
import { backoffDelay } from "../../core/retry.js";
import { type Config, configError, listenOn } from "../gateway/config.js";
import { createLogger, type Logger } from "../gateway/logger.js";
import { exitOnSignals, isIpcMessage, READY_MESSAGE, SHUTDOWN_MESSAGE } from "../lifecycle.js";
import { keepSlotsForWorkers } from "./connection-slots.js";
import { setupHandoverPrimary } from "./handover.js";
import { createClusterMetricsServer, isMetricsRequest } from "./metrics.js";

/**
 * `switchboard cluster`: a primary that owns the port and forks `WORKERS` gateway workers.
 * The primary hands each connection to one worker (handover.ts: an Engine.IO session's
 * long-polling requests go to the worker that holds it); @socket.io/cluster-adapter relays
 * broadcasts between workers through this primary, unless the workers use a network backplane (BACKPLANE=redis…), which then spans hosts too.
 */

export interface ClusterWorker {
  /** `GATEWAY_ID` of the worker: `<primary's GATEWAY_ID>-w<index>`. */
  readonly gatewayId: string;
  readonly index: number;
  readonly worker: Worker;
  /** Resolves when the worker reported READY_MESSAGE; rejects if it exits before. */
  readonly ready: Promise<void>;
}

export interface ClusterPrimaryOptions {
  /**
   * Replace a worker that dies, with a growing delay when it keeps dying. Tests that kill workers
   * on purpose turn it off. @default true
   */
  restartWorkers?: boolean;
}

export interface ClusterPrimary {
  readonly logger: Logger;
  /** The primary's socket server (connections are handed to workers); not listening until `listen`. */
  readonly server: Server;
  /** Forks one more worker, with the next index. */
  fork(): ClusterWorker;
  /** The workers alive now. */
  workers(): ClusterWorker[];
  listen(): Promise<void>;
  /** Asks every worker to drain and exit (over IPC), waits for them, stops listening. */
  stop(): Promise<void>;
}

export function createClusterPrimary(
  config: Config,
  options: ClusterPrimaryOptions = {},
): ClusterPrimary {
  if (config.tlsCertFile !== undefined) {
    // The primary routes connections by reading their first bytes, which TLS hides.
    throw configError([
      "invalid environment variable TLS_CERT_FILE: not supported by `switchboard cluster`: run `switchboard gateway` processes, or terminate TLS in front of the cluster",
    ]);
  }
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  const workerBackplane = config.backplane === "memory" ? "cluster" : config.backplane;
  const alive = new Map<Worker, ClusterWorker>();
  const crashes = new Map<number, number[]>();
  let nextIndex = 0;
  let stopping = false;

  // The primary reads each connection's request head before a worker gets it: a client that
  // sends nothing, or not a whole head, is this server's to time out, with a gateway's bound.
  const readyWorkers = new Set<Worker>();
  const server = setupHandoverPrimary({
    headersTimeout: config.httpHeadersTimeoutMs,
    isReady: (worker) => readyWorkers.has(worker),
    // GET /metrics: every worker's metrics, from the primary (metrics.ts).
    local: {
      matches: isMetricsRequest,
      server: createClusterMetricsServer({
        metricsToken: config.metricsToken,
        headersTimeout: config.httpHeadersTimeoutMs,
        requestTimeout: config.httpRequestTimeoutMs,
        workers: () => [...readyWorkers],
      }),
    },
  });
  keepSlotsForWorkers(config.maxConnectionsPerIp);

  const fork = (index: number): ClusterWorker => {
    const gatewayId = `${config.gatewayId}-w${index}`;
    const worker = cluster.fork({ GATEWAY_ID: gatewayId, BACKPLANE: workerBackplane });
    const ready = new Promise<void>((resolve, reject) => {
      const onExit = (code: number | null, signal: string | null) =>
        reject(new Error(`worker ${gatewayId} exited before it was ready (${code ?? signal})`));
      worker.once("exit", onExit);
      worker.on("message", (message: unknown) => {
        if (!isIpcMessage(message, READY_MESSAGE)) return;
        // A worker still loading gets connections only when no other worker is ready.
        readyWorkers.add(worker);
        worker.off("exit", onExit);
        logger.info({ worker: worker.process.pid, index }, "worker ready");
        resolve();
      });
    });
    ready.catch(() => {}); // an early death is handled by the exit listener below
    const entry = { gatewayId, index, worker, ready };
    alive.set(worker, entry);
    logger.info({ worker: worker.process.pid, index }, "worker started");
    return entry;
  };

  cluster.on("exit", (worker, code, signal) => {
    readyWorkers.delete(worker);
    const entry = alive.get(worker);
    alive.delete(worker);
    if (stopping || !entry) return;
    if (options.restartWorkers === false) {
      logger.warn(
        { worker: worker.process.pid, index: entry.index, code, signal },
        "worker exited",
      );
      return;
    }
    const now = Date.now();
    const recent = (crashes.get(entry.index) ?? []).filter((t) => now - t < 60_000);
    recent.push(now);
    crashes.set(entry.index, recent);
    const delayMs = backoffDelay(recent.length - 1, { initialMs: 100, maxMs: 10_000 });
    logger.warn(
      { worker: worker.process.pid, index: entry.index, code, signal, restartInMs: delayMs },
      "worker died",
    );
    setTimeout(() => {
      if (!stopping) fork(entry.index);
    }, delayMs);
  });

  return {
    logger,
    server,
    fork: () => fork(nextIndex++),
    workers: () => [...alive.values()],
    listen: () => listenOn(server, config.host, config.port).then(() => undefined),
    async stop() {
      stopping = true;
      // Workers drain (their /readyz says 503 through this primary's port), then exit.
      await Promise.all(
        [...alive.keys()].map(
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
      server.close();
    },
  };
}

export async function runClusterPrimary(config: Config): Promise<void> {
  const primary = createClusterPrimary(config);
  // The port first: when it cannot be had, the primary stops with one line naming HOST and PORT
  // before any worker exists (a worker still starting would fail on its IPC channel when the
  // primary exits). Connections accepted before the workers are ready wait in them
  // (early-connections.ts): the forks below run before any connection event can.
  await primary.listen();
  for (let i = 0; i < config.workers; i++) primary.fork();
  primary.logger.info(
    {
      port: config.port,
      host: config.host,
      workers: config.workers,
      backplane: config.backplane === "memory" ? "cluster" : config.backplane,
    },
    "cluster listening",
  );
  exitOnSignals(primary.logger, config.shutdownTimeoutMs, () => primary.stop());
}
