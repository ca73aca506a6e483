import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

/** Process helpers of the bench: start servers pinned to cores, read their CPU and memory. */

const PROBE = new URL("./servers/probe.mjs", import.meta.url).href;
const CLK_TCK = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime and stime of a process (all its threads) in seconds; undefined once it is gone. */
export function cpuTimes(pid: number): { user: number; sys: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
  } catch {
    return undefined;
  }
}

/** utime + stime of a process (all its threads) in seconds; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  const t = cpuTimes(pid);
  return t === undefined ? undefined : t.user + t.sys;
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** Whole-machine busy and total CPU seconds (all cores), from /proc/stat. */
export function machineCpu(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "";
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}

export const loadAverage = () =>
  readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Pins every thread of `pid` to `cpus` ("0", "1", "0-1"); false when taskset is missing. */
export function pin(pid: number, cpus: string | undefined): boolean {
  if (cpus === undefined) return false;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", cpus, String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** PIDs of processes whose command line contains every one of `needles` (e.g. RabbitMQ's VM). */
export function findPids(needles: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      if (needles.every((n) => cmd.includes(n))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** A positive number from the environment variable `name`, or `fallback` when unset or empty. */
export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number`);
  return value;
}

/** BENCH_ALT_CLI: another build's bin/switchboard.js to run beside this one; it must exist. */
export function altCliFromEnv(): string | undefined {
  const cli = process.env.BENCH_ALT_CLI || undefined;
  if (cli !== undefined && !existsSync(cli)) throw new Error(`BENCH_ALT_CLI: no such file ${cli}`);
  return cli;
}

/**
 * The environment of a Switchboard gateway under a bench: loopback, quiet, no ingest, no drain at
 * stop, and the per-socket rate limits lifted (the publishers send 100/s each; the bench is not
 * about those limits). `extra` adds the backplane and whatever the bench varies.
 */
export function gatewayEnv(
  port: number,
  gatewayId: string,
  extra: Record<string, string>,
): Record<string, string> {
  return {
    PORT: String(port),
    HOST: "127.0.0.1",
    GATEWAY_ID: gatewayId,
    LOG_LEVEL: "warn",
    INGEST: "off",
    RATE_LIMIT_PER_SEC: "1000000",
    RATE_LIMIT_BURST: "1000000",
    SHUTDOWN_DRAIN_MS: "0",
    ...extra,
  };
}

export interface ServerProcess {
  readonly name: string;
  readonly pid: number;
  readonly url: string;
  /** heap after two forced GCs and RSS, from the bench probe inside the process. */
  memory(): Promise<{ rss: number; heapUsed: number; gc: boolean }>;
  /**
   * Starts a CPU profile in the process; "mark" opens the window it keeps (samples, event-loop
   * delay and GC pauses from then on); "stop" writes the window's .cpuprofile to `file` and
   * answers the loop delay and GC pauses in it.
   */
  profile(action: "start" | "mark" | "stop", file?: string): Promise<ProfileWindow>;
  /** Any other request to the bench probe (servers/probe.mjs lists them); its answer. */
  probe(message: { probe: string } & Record<string, unknown>): Promise<Record<string, unknown>>;
  output(): string;
  stop(): Promise<void>;
}

/** What a server's event loop did while the probe profiled it (ms). */
export interface ProfileWindow {
  loop?: { p50: number; p99: number; max: number };
  gc?: { count: number; totalMs: number; maxMs: number };
}

export interface StartServerOptions {
  name: string;
  /** The JavaScript file node runs. */
  script: string;
  args: string[];
  env?: Record<string, string>;
  port: number;
  /** HTTP path that answers < 500 once the server takes clients. */
  readyPath: string;
  cpus?: string;
  timeoutMs?: number;
  /** More node options, e.g. --cpu-prof. */
  execArgv?: string[];
}

/** Forks `node --expose-gc --import probe <script> <args>`, pins it, waits until it answers. */
export async function startServer(options: StartServerOptions): Promise<ServerProcess> {
  const child: ChildProcess = fork(options.script, options.args, {
    execArgv: ["--expose-gc", "--import", PROBE, ...(options.execArgv ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${options.port}`;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    if (exited) throw new Error(`${options.name} exited during start-up:\n${output}`);
    if (Date.now() > deadline) {
      child.kill("SIGKILL");
      throw new Error(`${options.name} did not answer ${options.readyPath} in time:\n${output}`);
    }
    const status = await fetch(`${url}${options.readyPath}`, { signal: AbortSignal.timeout(1000) })
      .then((r) => r.status)
      .catch(() => 0);
    if (status > 0 && status < 500) break;
    await sleep(100);
  }
  const pid = child.pid ?? -1;
  pin(pid, options.cpus);
  let nextId = 1;
  /** One request to the probe over IPC; its answer, or a rejection after 10 s. */
  const request = <T>(message: Record<string, unknown>) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => reject(new Error(`${options.name}: no probe answer`)), 10_000);
      const onMessage = (m: unknown) => {
        const reply = m as { probe?: string; id?: number; error?: string };
        if (reply?.probe !== message.probe || reply.id !== id) return;
        clearTimeout(timer);
        child.off("message", onMessage);
        if (reply.error !== undefined) reject(new Error(`${options.name}: ${reply.error}`));
        else resolve(reply as T);
      };
      child.on("message", onMessage);
      child.send({ ...message, id });
    });
  return {
    name: options.name,
    pid,
    url,
    output: () => output,
    memory: () => request({ probe: "memory", gc: true }),
    profile: (action: "start" | "mark" | "stop", file?: string) =>
      request({ probe: "profile", action, file }),
    probe: (message) => request(message),
    async stop() {
      if (exited) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exit;
      clearTimeout(timer);
    },
  };
}

export const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Runs a bench entry point: exit 0 when it finishes, 1 (with the error printed) when it throws. */
export function runMain(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}

/** The kernel events `countEvents` counts: every syscall, the I/O ones by name, switches. */
const PERF_EVENTS = [
  "raw_syscalls:sys_enter",
  "syscalls:sys_enter_write",
  "syscalls:sys_enter_writev",
  "syscalls:sys_enter_read",
  "syscalls:sys_enter_epoll_wait",
  "syscalls:sys_enter_epoll_pwait",
  "context-switches",
];

/**
 * Counts syscalls (all, and write/writev/read/epoll_wait) and context switches of `pid`, all
 * threads, with `perf stat` on kernel tracepoints (cheap: no ptrace), until `stop()`; resolves
 * undefined where perf or the tracepoints are not available.
 */
export function countEvents(pid: number): { stop(): Promise<Record<string, number> | undefined> } {
  let child: ChildProcess;
  try {
    child = spawn("perf", ["stat", "-x", ",", "-e", PERF_EVENTS.join(","), "-p", String(pid)], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch {
    return { stop: async () => undefined };
  }
  let err = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const done = new Promise<Record<string, number> | undefined>((resolve) => {
    child.once("error", () => resolve(undefined));
    child.once("close", () => {
      const counts: Record<string, number> = {};
      for (const line of err.split("\n")) {
        const [value, , event] = line.split(",");
        if (event === undefined || !PERF_EVENTS.includes(event) || !/^\d+$/.test(value ?? ""))
          continue;
        counts[event.replace(/^(raw_)?syscalls:sys_enter_?/, "") || "syscalls"] = Number(value);
      }
      resolve(Object.keys(counts).length > 0 ? counts : undefined);
    });
  });
  return {
    stop: () => {
      child.kill("SIGINT");
      return done;
    },
  };
}

/**
 * Records where `pid` spends CPU time (`perf record -e task-clock`: samples only while it runs,
 * kernel included; JIT frames are named where the process runs with --perf-basic-prof) into
 * `file` until `stop()`; false where perf is not available.
 */
export function recordCpu(pid: number, file: string, hz = 2000): { stop(): Promise<boolean> } {
  const child = spawn(
    "perf",
    ["record", "-q", "-e", "task-clock", "-F", String(hz), "-p", String(pid), "-o", file],
    { stdio: "ignore" },
  );
  const done = new Promise<boolean>((resolve) => {
    child.once("error", () => resolve(false));
    child.once("close", (code) => resolve(code === 0));
  });
  return {
    stop: () => {
      child.kill("SIGINT");
      return done;
    },
  };
}
