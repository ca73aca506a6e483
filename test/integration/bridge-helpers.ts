import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import amqp from "amqplib";
import type { Socket } from "socket.io-client";
import { onTestFinished } from "vitest";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { connectClient, request, whoami } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";

// Debian's python3-socketio / python3-flask-socketio install for the system interpreter.
export const PYTHON = "/usr/bin/python3";
const TOOL = fileURLToPath(new URL("./python/bridge_tool.py", import.meta.url));
const run = promisify(execFile);

export type Broker = "amqp" | "redis";

export const brokerUrl = (broker: Broker) => (broker === "amqp" ? amqpUrl() : redisUrl());

/**
 * A channel of the test's own. kombu's exchange is neither durable nor auto-deleted, so it would
 * outlive the test on the shared RabbitMQ: it is deleted when the test ends.
 */
export function uniqueChannel(): string {
  const channel = `flask-socketio.test.${randomBytes(5).toString("hex")}`;
  onTestFinished(async () => {
    const connection = await amqp.connect(await amqpUrl());
    const ch = await connection.createChannel();
    await ch.deleteExchange(channel).catch(() => undefined);
    await connection.close().catch(() => undefined);
  });
  return channel;
}

/** Runs one bridge_tool.py command to completion; returns its JSON lines. */
export async function python(...args: string[]): Promise<Record<string, unknown>[]> {
  const { stdout } = await run(PYTHON, [TOOL, ...args], {
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? "" },
  });
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** A long-running bridge_tool.py command whose JSON lines are collected as they come. */
export interface PythonProcess {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  output(): string;
  waitForLine(
    match: (line: Record<string, unknown>) => boolean,
    what: string,
  ): Promise<Record<string, unknown>>;
  send(line: unknown): void;
  stop(): Promise<void>;
}

export function startPython(...args: string[]): PythonProcess {
  const child = spawn(PYTHON, [TOOL, ...args], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("{")) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    child,
    lines,
    output: () => `${lines.map((l) => JSON.stringify(l)).join("\n")}\n${stderr}`,
    waitForLine: (match, what) =>
      waitFor(() => lines.find(match), { timeoutMs: 20_000, message: `${what}\n${stderr}` }),
    send: (line) => child.stdin?.write(`${JSON.stringify(line)}\n`),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/** A gateway process with the Python bridge on `broker`'s channel, once the bridge listens. */
export async function startBridgeGateway(
  broker: Broker,
  channel: string,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const url = await brokerUrl(broker);
  const gateway = await startGateway({
    env: {
      BACKPLANE: broker === "amqp" ? "amqp" : "redis",
      AMQP_URL: await amqpUrl(),
      REDIS_URL: await redisUrl(),
      AMQP_EXCHANGE: `${channel}.backplane`,
      INGEST: "off",
      PYTHON_BRIDGE_URL: url,
      PYTHON_BRIDGE_CHANNEL: channel,
      ...env,
    },
  });
  try {
    await waitFor(async () => (await metric(gateway, "switchboard_bridge_connected")) === 1, {
      message: "the bridge listening",
    });
  } catch (err) {
    await gateway.stop();
    throw new Error(`${(err as Error).message}\n${gateway.output()}`);
  }
  return gateway;
}

/** Sum of a metric's samples whose labels include `labels`. */
export async function metric(
  gateway: GatewayProcess,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** A Socket.IO client that records every event it receives with all its arguments. */
export interface Recorder {
  socket: Socket;
  id: string;
  gateway: string;
  events: Array<{ event: string; args: unknown[] }>;
  named(event: string): unknown[][];
}

export async function recorder(
  gateway: GatewayProcess,
  rooms: string[],
  namespace = "/",
): Promise<Recorder> {
  const socket = await connectClient(`${gateway.url}${namespace === "/" ? "" : namespace}`);
  const events: Recorder["events"] = [];
  socket.onAny((event: string, ...args: unknown[]) => events.push({ event, args }));
  for (const room of rooms) {
    const reply = await request(socket, "join", room);
    if ((reply as { ok?: boolean }).ok !== true)
      throw new Error(`join ${room}: ${JSON.stringify(reply)}`);
  }
  const me = namespace === "/" ? await whoami(socket) : { gateway: gateway.url };
  return {
    socket,
    id: socket.id!,
    gateway: me.gateway,
    events,
    named: (event) => events.filter((e) => e.event === event).map((e) => e.args),
  };
}
