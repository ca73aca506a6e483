import type { Socket } from "socket.io-client";
import { connectClient, type WhoAmI } from "../clients.js";
import { type GatewayProcess, startGateway } from "../gateway-process.js";
import type { ControlOp, ControlOps, NodeInfo } from "./protocol.js";

/** One gateway process (or cluster worker) of a deployment, with its control channel. */
export interface HarnessNode {
  readonly gatewayId: string;
  readonly pid: number;
  /** Where its clients connect (for cluster workers: the primary's port, see `connect`). */
  readonly url: string;
  control<Op extends ControlOp>(
    op: Op,
    ...args: ControlOps[Op]["args"] extends undefined ? [] : [ControlOps[Op]["args"]]
  ): Promise<ControlOps[Op]["result"]>;
  /** Sends a signal to this process (SIGKILL, SIGSTOP…). */
  signal(signal: NodeJS.Signals): void;
}

export interface ClientOptions {
  /** @default "/" */
  nsp?: string;
  query?: Record<string, string>;
  auth?: Record<string, unknown>;
  /** @default ["websocket"] */
  transports?: ("websocket" | "polling")[];
}

export interface Deployment {
  /** The nodes started with the deployment, in start order. */
  readonly nodes: readonly HarnessNode[];
  /** A client connected to `node` (closed by `closeAllClients`). */
  connect(node: HarnessNode, options?: ClientOptions): Promise<Socket>;
  /** Starts one more node on the same backplane. */
  addNode(): Promise<HarnessNode>;
  /** The last lines of every process's output, for a failing test's report. */
  output(lines?: number): string;
  /** Stops every process; safe to call twice. */
  close(): Promise<void>;
}

export interface DeploymentOptions {
  /** Separate gateway processes, or workers of one node:cluster primary (BACKPLANE=cluster). */
  topology: "processes" | "cluster";
  count: number;
  /** Gateway environment (BACKPLANE, broker URL, timeouts…). */
  env: Record<string, string>;
  /** Prefix of the nodes' GATEWAY_IDs. */
  name: string;
}

export function startDeployment(options: DeploymentOptions): Promise<Deployment> {
  return options.topology === "cluster" ? startCluster(options) : startProcesses(options);
}

async function startProcesses(options: DeploymentOptions): Promise<Deployment> {
  const processes: GatewayProcess[] = [];
  let index = 0;
  const start = async (): Promise<HarnessNode> => {
    const gatewayId = `${options.name}-n${index++}`;
    const gateway = await startGateway({
      mode: "harness",
      env: { ...options.env, GATEWAY_ID: gatewayId },
    });
    processes.push(gateway);
    return {
      gatewayId,
      pid: gateway.pid,
      url: gateway.url,
      control: (op, ...args) => gateway.control(op, args[0]),
      signal: (signal) => gateway.signal(signal),
    };
  };
  const close = () => Promise.all(processes.map((p) => p.stop(5000))).then(() => {});
  try {
    const nodes = await Promise.all(Array.from({ length: options.count }, start));
    return {
      nodes,
      connect: (node, client) => connectTo(node.url, client),
      addNode: start,
      output: (lines = 30) =>
        processes.map((p) => tail(`pid ${p.pid}`, p.output(), lines)).join(""),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function startCluster(options: DeploymentOptions): Promise<Deployment> {
  const primary = await startGateway({
    mode: "harness",
    env: { ...options.env, BACKPLANE: "cluster", WORKERS: String(options.count) },
    // A primary and `count` workers load at once: on a busy 2-core machine that alone has taken
    // over 30 s. Still inside the suite's 120 s beforeAll bound.
    timeoutMs: 90_000,
  });
  const toNode = (info: NodeInfo): HarnessNode => ({
    ...info,
    url: primary.url,
    control: (op, ...args) =>
      primary.control("relay", { worker: info.gatewayId, op, args: args[0] }),
    signal: (signal) => {
      // A worker of the primary this test started: signalled by its own pid, never by name.
      try {
        process.kill(info.pid, signal);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ESRCH") throw err; // already gone
      }
    },
  });
  try {
    const nodes = (await primary.control<NodeInfo[]>("workers")).map(toNode);
    return {
      nodes,
      // Sticky balancing picks the worker: connect until one lands on `node`; the others stay
      // open (so that least-connection moves on) until the test closes its clients.
      async connect(node, client) {
        for (let attempt = 0; attempt < 30; attempt++) {
          const socket = await connectTo(primary.url, client);
          const me = (await socket.timeout(10_000).emitWithAck("whoami")) as WhoAmI;
          if (me.gateway === node.gatewayId) return socket;
        }
        throw new Error(`30 clients did not land on worker ${node.gatewayId}`);
      },
      addNode: async () => toNode(await primary.control<NodeInfo>("fork")),
      output: (lines = 60) => tail(`primary ${primary.pid} and workers`, primary.output(), lines),
      close: () => primary.stop(5000),
    };
  } catch (err) {
    await primary.stop(1000);
    throw err;
  }
}

function connectTo(url: string, client: ClientOptions = {}): Promise<Socket> {
  const nsp = client.nsp ?? "/";
  return connectClient(nsp === "/" ? url : url + nsp, {
    ...(client.query && { query: client.query }),
    ...(client.auth && { auth: client.auth }),
    ...(client.transports && { transports: client.transports }),
  });
}

function tail(title: string, output: string, lines: number): string {
  return `--- ${title} ---\n${output.trimEnd().split("\n").slice(-lines).join("\n")}\n`;
}
