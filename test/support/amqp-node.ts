/**
 * A Socket.IO node on the AMQP adapter, as a child process for tests that
 * kill (SIGKILL) or freeze (SIGSTOP) a node. Start it with `forkAmqpNode()`.
 * argv[2] is JSON: { url, exchange, adapter }. IPC: it sends
 * { type: "ready", port, nodeId }; it accepts { type: "close" }.
 */
import { type ChildProcess, fork } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import amqp from "amqplib";
import { Server } from "socket.io";
import {
  type AmqpAdapter,
  type AmqpAdapterOptions,
  createAmqpAdapter,
} from "../../adapters/amqp/index.js";

interface NodeConfig {
  url: string;
  /** Close right after start and let the process end by itself (proves no handle leaks). */
  closeAndIdle?: boolean;
  exchange: string;
  adapter?: Omit<AmqpAdapterOptions, "logger" | "onError" | "connectionFactory">;
}

export interface ForkedNode {
  child: ChildProcess;
  port: number;
  nodeId: string;
  /** Resumes (if stopped) and kills the child, by PID; idempotent. */
  kill(): void;
}

export async function forkAmqpNode(config: NodeConfig, timeoutMs = 20_000): Promise<ForkedNode> {
  const child = fork(fileURLToPath(import.meta.url), [JSON.stringify(config)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const kill = () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(child.pid, "SIGCONT");
      process.kill(child.pid, "SIGKILL");
    } catch {
      // already gone
    }
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      kill();
      reject(new Error("child node did not get ready"));
    }, timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child node exited early (${code})`));
    });
    child.on("message", (msg: { type: string; port: number; nodeId: string }) => {
      if (msg.type !== "ready") return;
      clearTimeout(timer);
      resolve({ child, port: msg.port, nodeId: msg.nodeId, kill });
    });
  });
}

async function main(config: NodeConfig): Promise<void> {
  const connection = await amqp.connect(config.url);
  connection.on("error", () => undefined);
  const http = createServer();
  const io = new Server(http, {
    adapter: createAmqpAdapter(connection, { ...config.adapter, exchange: config.exchange }),
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const adapter = io.of("/").adapter as unknown as AmqpAdapter;
  if (config.closeAndIdle) {
    await waitReady(adapter);
    await Promise.all([adapter.close(), adapter.close()]); // idempotent
    await io.close();
    const channel = await connection.createChannel();
    await channel.deleteExchange(config.exchange);
    await connection.close();
    process.disconnect?.();
    return; // no process.exit: the event loop must drain by itself
  }
  const shutdown = async () => {
    await io.close();
    await connection.close().catch(() => undefined);
    process.exit(0);
  };
  process.on("message", (msg: { type: string }) => {
    if (msg.type === "close") void shutdown();
  });
  process.on("disconnect", () => void shutdown()); // parent gone
  process.send?.({
    type: "ready",
    port: (http.address() as AddressInfo).port,
    nodeId: adapter.nodeId,
  });
}

/** Polls until the adapter is connected; a node that cannot connect in 30 s fails loudly. */
async function waitReady(adapter: AmqpAdapter, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!adapter.connected) {
    if (Date.now() > deadline) throw new Error(`AMQP adapter not connected after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url) && process.send) {
  main(JSON.parse(process.argv[2] ?? "{}") as NodeConfig).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
