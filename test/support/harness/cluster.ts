import type { Worker } from "node:cluster";
import { createClusterPrimary } from "../../../services/cluster/primary.js";
import type { Config } from "../../../services/gateway/config.js";
import { exitOnSignals } from "../../../services/lifecycle.js";
import {
  type ControlReply,
  isControlReply,
  isControlRequest,
  type NodeInfo,
  type PrimaryOps,
  WORKER_READY,
} from "./protocol.js";

/**
 * The harness under node:cluster: the real primary of `switchboard cluster`
 * (services/cluster/primary.ts) with two test settings — a dead worker is NOT restarted (tests
 * kill workers on purpose) and the port opens only once every worker serves its control channel —
 * plus control requests relayed to one worker.
 */
export async function runHarnessPrimary(config: Config): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) throw new Error("the harness must be forked with an IPC channel");
  const primary = createClusterPrimary(config, { restartWorkers: false });
  const serving = new Map<string, { worker: Worker; info: NodeInfo }>();
  const relays = new Map<number, { worker: Worker; done: (reply: ControlReply) => void }>();
  let nextRelayId = 1;

  const onWorkerMessage = (message: unknown) => {
    if (!isControlReply(message)) return;
    const relay = relays.get(message.id);
    relays.delete(message.id);
    relay?.done(message);
  };

  const fork = () =>
    new Promise<NodeInfo>((resolve, reject) => {
      const entry = primary.fork();
      const { worker, gatewayId } = entry;
      const onExit = (code: number | null, signal: string | null) => {
        serving.delete(gatewayId);
        for (const [id, relay] of relays) {
          if (relay.worker !== worker) continue;
          relays.delete(id);
          relay.done({ id, error: `worker exited (code ${code}, signal ${signal})` });
        }
        reject(new Error(`worker ${gatewayId} exited before serving (code ${code}, ${signal})`));
      };
      worker.once("exit", onExit);
      worker.on("message", (message: { type?: unknown; pid?: number } | null) => {
        onWorkerMessage(message);
        if (message?.type !== WORKER_READY) return;
        const info = { gatewayId, pid: message.pid ?? worker.process.pid ?? -1 };
        serving.set(gatewayId, { worker, info });
        resolve(info);
      });
    });

  const relay = (args: PrimaryOps["relay"]["args"]) =>
    new Promise<unknown>((resolve, reject) => {
      const entry = serving.get(args.worker);
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
        return Promise.resolve([...serving.values()].map((entry) => entry.info));
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
  await primary.listen();
  primary.logger.info({ port: config.port, workers: config.workers }, "harness cluster listening");
  exitOnSignals(primary.logger, config.shutdownTimeoutMs, () => primary.stop());
}
