import cluster, { type Worker } from "node:cluster";
import { setupStickyPrimary } from "../../../services/cluster/handover.js";
import type { Config } from "../../../services/gateway/config.js";
import { createLogger } from "../../../services/gateway/logger.js";
import { exitOnSignals, SHUTDOWN_MESSAGE } from "../../../services/lifecycle.js";
import {
  type ControlReply,
  isControlReply,
  isControlRequest,
  type NodeInfo,
  type PrimaryOps,
  WORKER_READY,
} from "./protocol.js";

/**
 * The harness under node:cluster: like `switchboard cluster` (services/cluster/primary.ts) —
 * @socket.io/cluster-adapter relays between workers, @socket.io/sticky hands connections out with
 * least-connection balancing — but a dead worker is NOT restarted (tests kill workers on purpose),
 * the port opens only once every worker serves, and control requests are relayed to one worker.
 */
export async function runHarnessPrimary(config: Config): Promise<void> {
  const logger = createLogger({ gatewayId: config.gatewayId, level: config.logLevel });
  const send = process.send?.bind(process);
  if (!send) throw new Error("the harness must be forked with an IPC channel");
  const workers = new Map<string, { worker: Worker; info: NodeInfo }>();
  const relays = new Map<number, { worker: Worker; done: (reply: ControlReply) => void }>();
  let nextIndex = 0;
  let nextRelayId = 1;
  let stopping = false;

  const httpServer = setupStickyPrimary();

  cluster.on("message", (_worker, message: unknown) => {
    if (!isControlReply(message)) return;
    const relay = relays.get(message.id);
    relays.delete(message.id);
    relay?.done(message);
  });
  cluster.on("exit", (worker, code, signal) => {
    for (const [gatewayId, entry] of workers)
      if (entry.worker === worker) workers.delete(gatewayId);
    for (const [id, relay] of relays) {
      if (relay.worker !== worker) continue;
      relays.delete(id);
      relay.done({ id, error: `worker exited (code ${code}, signal ${signal})` });
    }
    if (!stopping) logger.warn({ worker: worker.process.pid, code, signal }, "worker exited");
  });

  const fork = () =>
    new Promise<NodeInfo>((resolve, reject) => {
      const gatewayId = `${config.gatewayId}-w${nextIndex++}`;
      const worker = cluster.fork({ GATEWAY_ID: gatewayId });
      const onExit = (code: number | null, signal: string | null) =>
        reject(new Error(`worker ${gatewayId} exited before serving (code ${code}, ${signal})`));
      const onMessage = (message: { type?: unknown; pid?: number } | null) => {
        if (message?.type !== WORKER_READY) return;
        worker.off("message", onMessage);
        worker.off("exit", onExit);
        const info = { gatewayId, pid: message.pid ?? worker.process.pid ?? -1 };
        workers.set(gatewayId, { worker, info });
        resolve(info);
      };
      worker.on("message", onMessage);
      worker.once("exit", onExit);
    });

  const relay = (args: PrimaryOps["relay"]["args"]) =>
    new Promise<unknown>((resolve, reject) => {
      const entry = workers.get(args.worker);
      if (!entry) return reject(new Error(`no live worker "${args.worker}"`));
      const id = nextRelayId++;
      relays.set(id, {
        worker: entry.worker,
        done: (reply) =>
          "error" in reply ? reject(new Error(reply.error)) : resolve(reply.result),
      });
      entry.worker.send({ id, op: args.op, args: args.args });
    });

  const handle = (op: string, args: unknown): Promise<unknown> => {
    switch (op) {
      case "workers":
        return Promise.resolve([...workers.values()].map((entry) => entry.info));
      case "fork":
        return fork();
      case "relay":
        return relay(args as PrimaryOps["relay"]["args"]);
      default:
        return Promise.reject(new Error(`unknown primary op "${op}"`));
    }
  };

  process.on("message", (message: unknown) => {
    if (!isControlRequest(message)) return;
    const { id } = message;
    const reply = (m: ControlReply) => send(m, undefined, {}, () => {});
    handle(message.op, message.args).then(
      (result) => reply({ id, result: result ?? null }),
      (err: unknown) => reply({ id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The test runner is gone: take the workers down with this process (they follow the IPC pipe).
  process.once("disconnect", () => process.exit(1));

  await Promise.all(Array.from({ length: config.workers }, fork));
  await new Promise<void>((resolve, reject) => {
    httpServer.once("error", reject);
    httpServer.listen(config.port, config.host, () => resolve());
  });
  logger.info({ port: config.port, workers: config.workers }, "harness cluster listening");

  exitOnSignals(logger, config.shutdownTimeoutMs, async () => {
    stopping = true;
    await Promise.all(
      [...workers.values()].map(
        ({ worker }) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            worker.once("exit", () => resolve());
            worker.send({ type: SHUTDOWN_MESSAGE });
          }),
      ),
    );
    httpServer.close();
  });
}
