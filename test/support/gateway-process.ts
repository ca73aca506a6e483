import { type ChildProcess, fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { VARIABLES } from "../../services/gateway/config.js";
import { SECOND_NAMESPACE } from "./harness/protocol.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

/**
 * Tests run the CLI from the TypeScript sources (tsx), so they always test the code as edited;
 * bin/switchboard.js runs the built dist/ and has its own test (built-entry.test.ts).
 */
export const SOURCE_CLI = fileURLToPath(new URL("../../services/entry.ts", import.meta.url));
export const SOURCE_EXEC_ARGV = ["--import", "tsx"];
/** Node arguments that run `switchboard <args>` from the sources. */
export const sourceCliArgv = (args: string[]) => [...SOURCE_EXEC_ARGV, SOURCE_CLI, ...args];
const HARNESS = fileURLToPath(new URL("./harness/node.ts", import.meta.url));

/** Config variables a test must set itself: never inherited from the environment running the tests. */
const CONFIG_VARS: readonly string[] = VARIABLES;

export interface StartGatewayOptions {
  /** `gateway` / `cluster` run the real CLI; `harness` runs a gateway with a test control channel. */
  mode?: "gateway" | "cluster" | "harness";
  env?: Record<string, string>;
  /** Wait until /readyz answers 200 (default) or only until /healthz does. */
  waitFor?: "ready" | "healthy" | "nothing";
  timeoutMs?: number;
  /** A JavaScript entry point to run instead of the sources (no tsx), e.g. a built bin/switchboard.js. */
  builtCli?: string;
}

export interface GatewayProcess {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  readonly child: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  isRunning(): boolean;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. Safe to call twice. */
  stop(graceMs?: number): Promise<void>;
  /** Harness mode only: runs a server-side operation in the gateway process. */
  control<T = unknown>(op: string, args?: unknown): Promise<T>;
}

export async function startGateway(options: StartGatewayOptions = {}): Promise<GatewayProcess> {
  const mode = options.mode ?? "gateway";
  const port = options.env?.PORT ? Number(options.env.PORT) : await freePort();
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !CONFIG_VARS.includes(key)) env[key] = value;
  }
  Object.assign(
    env,
    { HOST: "127.0.0.1", LOG_LEVEL: "warn", SHUTDOWN_DRAIN_MS: "0" },
    // The harness serves a second namespace (harness/ops.ts): clients may connect to it.
    mode === "harness" ? { NAMESPACES: `/,${SECOND_NAMESPACE}` } : {},
    options.env,
    {
      PORT: String(port),
    },
  );
  const child =
    mode === "harness"
      ? fork(HARNESS, [], {
          env,
          execArgv: ["--import", "tsx"],
          stdio: ["ignore", "pipe", "pipe", "ipc"],
        })
      : fork(options.builtCli ?? SOURCE_CLI, [mode], {
          env,
          execArgv: options.builtCli ? [] : SOURCE_EXEC_ARGV,
          stdio: ["ignore", "pipe", "pipe", "ipc"],
        });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  let running = true;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });

  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  child.on("message", (message: unknown) => {
    const reply = message as { id?: number; result?: unknown; error?: string };
    if (typeof reply?.id !== "number") return;
    const waiter = pending.get(reply.id);
    if (!waiter) return;
    pending.delete(reply.id);
    if (reply.error !== undefined) waiter.reject(new Error(reply.error));
    else waiter.resolve(reply.result);
  });
  void exited.then(() => {
    for (const waiter of pending.values()) waiter.reject(new Error("gateway process exited"));
    pending.clear();
  });

  const url = `http://127.0.0.1:${port}`;
  const gateway: GatewayProcess = {
    pid: child.pid ?? -1,
    port,
    url,
    child,
    output: () => output,
    exited,
    isRunning: () => running,
    signal: (signal) => {
      if (running) child.kill(signal);
    },
    async stop(graceMs = 15_000) {
      if (!running) return;
      child.kill("SIGCONT"); // a test may have frozen it
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
    control<T>(op: string, args?: unknown): Promise<T> {
      if (mode !== "harness") return Promise.reject(new Error("control() needs mode: harness"));
      const id = nextId++;
      return new Promise<T>((resolve, reject) => {
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ id, op, args });
      });
    },
  };

  const target = options.waitFor ?? "ready";
  if (target !== "nothing") {
    const path = target === "ready" ? "/readyz" : "/healthz";
    try {
      const outcome = await waitFor(
        async () => {
          // A process that exited will not become ready: stop waiting at once.
          if (!running) return "exited";
          const res = await fetch(url + path, { signal: AbortSignal.timeout(1000) });
          return res.status === 200;
        },
        {
          timeoutMs: options.timeoutMs ?? 30_000,
          intervalMs: 50,
          message: `${mode} on port ${port} ${target}`,
        },
      );
      if (outcome === "exited")
        throw new Error(`${mode} on port ${port} exited before it was ${target}`);
    } catch (err) {
      await gateway.stop(1000);
      throw new Error(`${(err as Error).message}\n--- output ---\n${output}`);
    }
  }
  return gateway;
}
