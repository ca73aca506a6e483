import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";

/** The repository's own load-balancer config: the one docker compose mounts. */
export const HAPROXY_CFG = fileURLToPath(
  new URL("../../deploy/haproxy/haproxy.cfg", import.meta.url),
);

export interface Balancer {
  readonly pid: number;
  /** Where clients connect, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  /** The balancer's stats frontend (/stats, /metrics, /healthz). */
  readonly statsUrl: string;
  /** Everything haproxy printed so far: one access-log line per request (`option httplog`). */
  output(): string;
  /** Server name -> status ("UP", "DOWN", "MAINT", …) in the `gateways` backend. */
  servers(): Promise<Map<string, string>>;
  stop(): Promise<void>;
}

export function haproxyBinary(): string {
  for (const candidate of ["haproxy", "/usr/sbin/haproxy"]) {
    const probe = spawnSync(candidate, ["-v"], { encoding: "utf8" });
    if (probe.status === 0) return candidate;
  }
  throw new Error(
    "the haproxy binary is not installed: `apt-get install haproxy` (bash .ci/run installs it)",
  );
}

/**
 * Runs deploy/haproxy/haproxy.cfg unchanged in front of `gateways` (host:port each). Only the
 * addresses the file reads from the environment are set: its listen ports (free ones), the
 * gateways, and a resolver on loopback (the gateways are IP literals, so nothing is resolved).
 * Runs in the foreground as this test's child, in a private temp dir, and is stopped by PID.
 */
export async function startBalancer(gateways: string[]): Promise<Balancer> {
  if (gateways.length !== 3) throw new Error("the compose topology has exactly three gateways");
  const binary = haproxyBinary();
  const [port, statsPort, dnsPort] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), "switchboard-haproxy-"));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    SWB_LB_BIND: `127.0.0.1:${port}`,
    SWB_LB_STATS_BIND: `127.0.0.1:${statsPort}`,
    SWB_LB_DNS: `127.0.0.1:${dnsPort}`,
  };
  gateways.forEach((address, i) => {
    env[`SWB_GATEWAY_${i + 1}`] = address;
  });
  const child: ChildProcess = spawn(binary, ["-db", "-f", HAPROXY_CFG], {
    cwd: dir,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  let running = true;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      running = false;
      resolve();
    });
  });

  const statsUrl = `http://127.0.0.1:${statsPort}`;
  const servers = async () => {
    const res = await fetch(`${statsUrl}/stats;csv`, { signal: AbortSignal.timeout(2000) });
    const rows = (await res.text()).split("\n").map((line) => line.split(","));
    const header = rows[0] ?? [];
    const status = header.indexOf("status");
    const result = new Map<string, string>();
    for (const row of rows.slice(1)) {
      if (row[0] === "gateways" && row[1] !== "BACKEND" && row[1]) {
        result.set(row[1], row[status] ?? "");
      }
    }
    return result;
  };

  const balancer: Balancer = {
    pid: child.pid ?? -1,
    url: `http://127.0.0.1:${port}`,
    statsUrl,
    output: () => output,
    servers,
    async stop() {
      if (running) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };

  try {
    const outcome = await waitFor(
      async () => {
        if (!running) return "exited"; // it will not come up: stop waiting at once
        const status = await servers();
        return status.size === 3 && [...status.values()].every((s) => s.startsWith("UP"));
      },
      { timeoutMs: 30_000, intervalMs: 100, message: "haproxy with all three gateways UP" },
    );
    if (outcome === "exited") throw new Error("haproxy exited");
  } catch (err) {
    await balancer.stop();
    throw new Error(`${(err as Error).message}\n--- haproxy output ---\n${output}`);
  }
  return balancer;
}

/**
 * Reads haproxy's access log (`option httplog`, raw format): for every engine.io session id seen
 * in a request's URL, the set of servers that answered its requests.
 */
export function serversBySession(log: string): Map<string, Set<string>> {
  const sessions = new Map<string, Set<string>>();
  for (const line of log.split("\n")) {
    const route = / clients gateways\/(\S+) /.exec(line);
    const sid = /[?&]sid=([^&\s"]+)/.exec(line);
    if (!route?.[1] || !sid?.[1]) continue;
    const servers = sessions.get(sid[1]) ?? new Set<string>();
    servers.add(route[1]);
    sessions.set(sid[1], servers);
  }
  return sessions;
}
