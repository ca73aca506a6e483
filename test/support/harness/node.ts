/**
 * A harness gateway process: a real gateway, started exactly as `switchboard gateway` starts one
 * (`runGateway`: loadConfig, createBackplane, createGateway, startPublishing, listen, signals), plus a
 * control channel on the IPC pipe (see ./protocol.ts) through which a test runs server-side
 * operations (`io.to(room).emit`, `fetchSockets`, `serverSideEmit`…) inside this process.
 *
 * With BACKPLANE=cluster this process becomes a node:cluster primary (./cluster.ts) that forks
 * WORKERS harness workers (this file again) and relays control requests to them.
 */
import cluster from "node:cluster";
import { runClusterWorker } from "../../../services/cluster/worker.js";
import { loadConfigOrExit, runGateway } from "../../../services/gateway/main.js";
import { waitFor } from "../wait.js";
import { createControl } from "./ops.js";
import { type ControlReply, isControlRequest, WORKER_READY } from "./protocol.js";

async function main(): Promise<void> {
  const send = process.send?.bind(process);
  if (!send) throw new Error("the harness must be forked with an IPC channel");
  const config = loadConfigOrExit(process.env);
  if (cluster.isPrimary && config.backplane === "cluster") {
    const { runHarnessPrimary } = await import("./cluster.js");
    await runHarnessPrimary(config);
    return;
  }
  const { gateway } = cluster.isWorker ? await runClusterWorker(config) : await runGateway(config);
  // The control channel adds a namespace: only once the backplane is ready. With ioredis, a
  // (s|p)subscribe sent between "connect" and "ready" breaks the ready check, the client
  // reconnects and the queued subscriptions are lost (reported; adapters/redis should await ready).
  await waitFor(() => gateway.readiness().ready, {
    timeoutMs: 30_000,
    message: "the backplane to be ready",
  });
  const control = createControl(gateway.io, { gatewayId: config.gatewayId });
  const reply = (message: ControlReply) => send(message, undefined, {}, () => {});
  process.on("message", (message: unknown) => {
    if (!isControlRequest(message)) return; // cluster adapter and hand-over traffic share the pipe
    const { id } = message;
    control(message.op, message.args).then(
      (result) => reply({ id, result: result ?? null }),
      (err: unknown) => reply({ id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  if (cluster.isWorker) {
    send({ type: WORKER_READY, gatewayId: config.gatewayId, pid: process.pid });
  } else {
    // The test runner is gone: do not outlive it.
    process.once("disconnect", () => process.exit(1));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `harness: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
