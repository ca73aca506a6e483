import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isListening } from "./brokers.js";
import { freePort } from "./ports.js";
import { waitFor } from "./wait.js";

export interface PrivateRedis {
  readonly url: string;
  readonly port: number;
  /** PID of the running redis-server; undefined while stopped. */
  readonly pid: number | undefined;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its directory; safe to call twice. */
  stop(): Promise<void>;
  /** Stops the server, keeping its port and directory, so that it can be started again. */
  pause(): Promise<void>;
  /** Starts it again on the same port (after `pause`), empty. */
  resume(): Promise<void>;
}

/**
 * A redis-server of the test's own, on a free port, in a temporary directory, without
 * persistence: for tests whose traffic must not meet other tests' (the Redis adapters use fixed
 * key/channel names) or that stop Redis. Needs the `redis-server` binary on PATH.
 */
export async function startPrivateRedis(extraArgs: string[] = []): Promise<PrivateRedis> {
  const dir = await mkdtemp(join(tmpdir(), "switchboard-redis-"));
  let server: RedisProcess | undefined;
  let removed = false;
  let port = 0;
  // Another process may take the free port before redis-server binds it: try a few.
  for (let attempt = 1; !server; attempt++) {
    port = await freePort();
    try {
      server = await spawnRedis(port, dir, extraArgs);
    } catch (err) {
      if (attempt < 3) continue;
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return server?.pid;
    },
    async pause() {
      await server?.stop();
      server = undefined;
    },
    async resume() {
      if (removed) throw new Error("the private redis-server was stopped for good");
      if (server) return;
      server = await spawnRedis(port, dir, extraArgs);
    },
    async stop() {
      await server?.stop();
      server = undefined;
      if (!removed) {
        removed = true;
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

export interface RedisProcess {
  readonly pid: number;
  /** stdout + stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

/** Starts `redis-server` on `port` with `dir` as working directory; resolves once it listens. */
export async function spawnRedis(
  port: number,
  dir: string,
  extraArgs: string[] = [],
): Promise<RedisProcess> {
  const child: ChildProcess = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--dir",
      dir,
      "--save",
      "",
      "--appendonly",
      "no",
      ...extraArgs,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const append = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", append);
  child.stderr?.on("data", append);
  let running = true;
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });
  const exited = new Promise<void>((resolve) => {
    child.once("close", () => {
      running = false;
      resolve();
    });
  });
  const stop = async () => {
    if (!running) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitFor(
      async () => {
        if (spawnError) throw spawnError;
        if (!running) throw new Error(`redis-server exited:\n${output}`);
        return isListening("127.0.0.1", port, 500);
      },
      { timeoutMs: 10_000, intervalMs: 20, message: `redis-server on port ${port}` },
    );
  } catch (err) {
    await stop();
    const hint = spawnError ? " (is redis-server installed? apt-get install redis-server)" : "";
    throw new Error(`${(err as Error).message}${hint}`);
  }
  return { pid: child.pid ?? -1, output: () => output, stop };
}
