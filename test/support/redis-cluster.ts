import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { freePort } from "./ports.js";
import { type RedisProcess, spawnRedis } from "./redis-server.js";
import { waitFor } from "./wait.js";

const run = promisify(execFile);

export interface PrivateRedisCluster {
  /** One URL per master; any one of them is enough as `REDIS_URL` with `REDIS_CLUSTER=on`. */
  readonly urls: string[];
  readonly ports: number[];
  /** Runs a command on one node with redis-cli and returns its raw output. */
  cli(port: number, ...args: string[]): Promise<string>;
  /** Stops every node by PID and removes their directories; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of the test's own from the installed `redis-server` binary: `masters` nodes
 * (no replicas) on free ports, each in a temporary directory, joined with
 * `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`.
 */
export async function startPrivateRedisCluster({ masters = 3 } = {}): Promise<PrivateRedisCluster> {
  const root = await mkdtemp(join(tmpdir(), "switchboard-redis-cluster-"));
  const nodes: RedisProcess[] = [];
  const ports: number[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(nodes.map((node) => node.stop()));
    await rm(root, { recursive: true, force: true });
  };
  const cli = async (port: number, ...args: string[]) => {
    const { stdout } = await run("redis-cli", ["-p", String(port), ...args], { timeout: 10_000 });
    return stdout;
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      const dir = join(root, String(port));
      await mkdir(dir);
      ports.push(port);
      nodes.push(
        await spawnRedis(port, dir, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          join(dir, "nodes.conf"),
          "--cluster-node-timeout",
          "2000",
        ]),
      );
    }
    await run(
      "redis-cli",
      [
        "--cluster",
        "create",
        ...ports.map((port) => `127.0.0.1:${port}`),
        "--cluster-replicas",
        "0",
        "--cluster-yes",
      ],
      { timeout: 30_000 },
    );
    await waitFor(
      async () => {
        const states = await Promise.all(ports.map((port) => cli(port, "CLUSTER", "INFO")));
        return states.every((info) => info.includes("cluster_state:ok"));
      },
      { timeoutMs: 20_000, intervalMs: 100, message: "cluster_state:ok on every node" },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    urls: ports.map((port) => `redis://127.0.0.1:${port}`),
    ports,
    cli,
    stop,
  };
}
