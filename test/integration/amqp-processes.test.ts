import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type Socket as ClientSocket, io as connectClient } from "socket.io-client";
import { describe, expect, it, onTestFinished } from "vitest";
import type { AmqpAdapterOptions } from "../../adapters/amqp/index.js";
import {
  nextEvent,
  recordingLogger,
  startAmqpCluster,
  uniqueExchange,
} from "../support/amqp-helpers.js";
import { type ForkedNode, forkAmqpNode } from "../support/amqp-node.js";
import { amqpUrl } from "../support/brokers.js";
import { waitFor } from "../support/wait.js";

/** Node 0 in this process, nodes 1 and 2 as child processes; one client on each. */
async function mixedCluster(adapter: Omit<AmqpAdapterOptions, "logger">) {
  const exchange = uniqueExchange();
  const logger = recordingLogger();
  const cluster = await startAmqpCluster({ nodes: 1, adapter: { ...adapter, exchange, logger } });
  const children: ForkedNode[] = [];
  onTestFinished(() => {
    for (const c of children) c.kill();
  });
  for (let i = 0; i < 2; i++) {
    children.push(await forkAmqpNode({ url: await amqpUrl(), exchange, adapter }));
  }
  const local = cluster.adapter(0);
  await waitFor(async () => (await local.serverCount()) === 3, {
    timeoutMs: 10_000,
    message: "3 nodes",
  });
  const clients: ClientSocket[] = [await cluster.client(0)];
  onTestFinished(() => {
    for (const c of clients) c.disconnect();
  });
  for (const child of children) {
    const socket = connectClient(`http://127.0.0.1:${child.port}`, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
    });
    clients.push(socket);
    await nextEvent(socket, "connect");
  }
  return { cluster, children, clients, logger, local };
}

describe("amqp adapter: nodes that die or freeze mid-request (real processes)", () => {
  it("fetchSockets completes with the other nodes when one is SIGKILLed (heartbeat timeout)", {
    timeout: 60_000,
  }, async () => {
    const { cluster, children, clients, local } = await mixedCluster({
      heartbeatIntervalMs: 300,
      heartbeatTimeoutMs: 2_000,
      requestsTimeoutMs: 20_000,
    });
    const [b, c] = children;
    process.kill(c?.child.pid as number, "SIGKILL");
    expect(await local.serverCount()).toBe(3); // still counted: the request waits for it
    const started = Date.now();
    const sockets = await cluster.servers[0]?.fetchSockets();
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(sockets?.map((s) => s.id).sort()).toEqual([clients[0]?.id, clients[1]?.id].sort());
    expect(await local.serverCount()).toBe(2);
    expect(b).toBeDefined();
  });

  it("with partialResults, fetchSockets resolves at the timeout when a node is SIGSTOPped, naming it", {
    timeout: 60_000,
  }, async () => {
    const { cluster, children, clients, logger, local } = await mixedCluster({
      heartbeatIntervalMs: 1_000,
      heartbeatTimeoutMs: 30_000,
      partialResults: true,
    });
    const frozen = children[1] as ForkedNode;
    process.kill(frozen.child.pid as number, "SIGSTOP");
    onTestFinished(() => {
      try {
        process.kill(frozen.child.pid as number, "SIGCONT");
      } catch {
        // already gone
      }
    });
    const sockets = await cluster.servers[0]?.timeout(1_500).fetchSockets();
    expect(sockets?.map((s) => s.id).sort()).toEqual([clients[0]?.id, clients[1]?.id].sort());
    expect(local.stats().missingResponses).toBe(1);
    const line = logger.lines.find((l) => l.message.includes("partial results"));
    expect(line?.fields).toMatchObject({ kind: "fetchSockets", missingNodes: [frozen.nodeId] });
  });
});

describe("amqp adapter: lifecycle", () => {
  it("a process exits by itself after close(), with every timer cleared", {
    timeout: 30_000,
  }, async () => {
    const script = fileURLToPath(new URL("../support/amqp-node.ts", import.meta.url));
    const config = { url: await amqpUrl(), exchange: uniqueExchange(), closeAndIdle: true };
    const child = fork(script, [JSON.stringify(config)], { execArgv: ["--import", "tsx"] });
    onTestFinished(() => {
      if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(0);
  });
});
