import { type ChildProcess, fork } from "node:child_process";
import * as hdr from "hdr-histogram-js";
import type { ClientKind, ConnectCommand, StepCommand } from "./load-worker.js";
import { cpuSeconds, cpuTimes, here, machineCpu, pin, rssBytes } from "./procs.js";

/**
 * The load generator: `workers` forked processes (pinned to the generator cores) holding
 * `clients` receivers spread over the servers' URLs, each a member of one of `rooms` rooms, and
 * `publishers` extra connections that publish open-loop. `step()` runs one measured window and
 * reads every accounted process's CPU from /proc around it.
 */
export interface LoadOptions {
  kind: ClientKind;
  urls: string[];
  clients: number;
  rooms: number;
  publishers: number;
  /** Where the publishers connect, when not spread over `urls` as the receivers are. */
  publisherUrls?: string[];
  workers: number;
  payloadBytes: number;
  genCpus?: string;
  /** Receivers join no room (idle connections). */
  idle?: boolean;
  concurrency?: number;
}

/** A process whose CPU counts as "server" (gateways, stock servers, brokers). */
export interface Accounted {
  role: string;
  pid: number;
}

export interface StepResult {
  rate: number;
  sent: number;
  sentMeasured: number;
  expected: number;
  delivered: number;
  lossPct: number;
  dupes: number;
  /** Deliveries received inside the measured window, whenever sent: throughput at saturation. */
  deliveredPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  /**
   * Latency of the deliveries whose publisher is on the receiver's server (`same`: no backplane
   * hop) and of the others (`cross`: through the backplane); `n` counts each.
   */
  latencyByPath: Record<"same" | "cross", { p50: number; p99: number; n: number }>;
  sendLagP99Ms: number;
  acksFailed: number;
  acksMissing: number;
  disconnects: number;
  serverCpuSec: number;
  serverCpuUsPerDelivery: number;
  /** The same CPU split into user and kernel (system) time, from utime and stime. */
  serverUserUsPerDelivery: number;
  serverSysUsPerDelivery: number;
  perProcessCpuPct: Record<string, number>;
  genCpuPct: number;
  /** Machine busy time not spent by servers or generator, in % of one core: other tenants. */
  otherCpuPct: number;
  serverRssMB: number;
}

function once<T>(child: ChildProcess, cmd: string, timeoutMs: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", onMessage);
      reject(new Error(`load worker: no ${cmd} within ${timeoutMs} ms`));
    }, timeoutMs);
    const onMessage = (m: { cmd?: string; error?: string }) => {
      if (m.cmd !== cmd && m.cmd !== "error") return;
      clearTimeout(timer);
      child.off("message", onMessage);
      if (m.cmd === "error") reject(new Error(m.error));
      else resolve(m as T);
    };
    child.on("message", onMessage);
  });
}

const histogram = () =>
  hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });
const ms = (h: hdr.Histogram, p: number) => Math.round(h.getValueAtPercentile(p)) / 1000;

export class LoadSession {
  private readonly workers: ChildProcess[] = [];
  private readonly roomNames: string[];
  private readonly members: number[];
  private k = 0;

  constructor(private readonly o: LoadOptions) {
    this.roomNames = Array.from({ length: o.rooms }, (_, r) => `bench:${r}`);
    this.members = new Array<number>(o.rooms).fill(0);
  }

  /** Connects every client; resolves with the connect wall time and connections per second. */
  async start(): Promise<{ ok: number; failed: number; wallMs: number; perSec: number }> {
    const { o } = this;
    const slices = Array.from({ length: o.workers }, () => ({
      clients: [] as ConnectCommand["clients"],
      publishers: [] as ConnectCommand["publishers"],
    }));
    for (let i = 0; i < o.clients; i++) {
      const room = i % o.rooms;
      this.members[room]!++;
      // Every room has members on every server: url = floor(i / rooms) % urls.
      slices[i % o.workers]!.clients.push({
        url: o.urls[Math.floor(i / o.rooms) % o.urls.length]!,
        room: o.idle ? null : this.roomNames[room]!,
      });
    }
    // Every publisher's server, by id: where it connects, and (in the workers) whether a
    // delivery from it is same-server or cross-server.
    const urls = o.publisherUrls ?? o.urls;
    const publisherUrls = Array.from({ length: o.publishers }, (_, j) => urls[j % urls.length]!);
    for (let j = 0; j < o.publishers; j++) {
      slices[j % o.workers]!.publishers.push({ id: j, url: publisherUrls[j]! });
    }
    for (let w = 0; w < o.workers; w++) {
      const child = fork(here("./load-worker.ts"), [], {
        execArgv: ["--import", "tsx", "--max-old-space-size=2048"],
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      await once(child, "hello", 30_000);
      pin(child.pid ?? -1, o.genCpus);
      this.workers.push(child);
    }
    const t0 = performance.now();
    const replies = await Promise.all(
      this.workers.map((child, w) => {
        const command: ConnectCommand = {
          cmd: "connect",
          kind: o.kind,
          clients: slices[w]!.clients,
          publishers: slices[w]!.publishers,
          publishersTotal: o.publishers,
          publisherUrls,
          concurrency: o.concurrency ?? 50,
        };
        child.send(command);
        return once<{ ok: number; failed: number; errors: string[]; wallMs: number }>(
          child,
          "connected",
          300_000,
        );
      }),
    );
    const wallMs = Math.max(...replies.map((r) => r.wallMs));
    const ok = replies.reduce((a, r) => a + r.ok, 0);
    const failed = replies.reduce((a, r) => a + r.failed, 0);
    if (failed > 0) {
      throw new Error(
        `${failed} connections failed: ${replies.flatMap((r) => r.errors).join("; ")}`,
      );
    }
    void t0;
    return { ok, failed, wallMs, perSec: Math.round((1000 * ok) / wallMs) };
  }

  async step(
    rate: number,
    accounted: Accounted[],
    opts: {
      warmupMs: number;
      durationMs: number;
      drainMs: number;
      /**
       * Called as the warm-up starts and as the measured window opens and closes (e.g. to
       * profile the servers in the window).
       */
      window?: { warmup(): void; open(): void; close(): void };
    },
  ): Promise<StepResult> {
    const { window: hooks, ...timing } = opts;
    const k = ++this.k;
    hooks?.warmup();
    const now = () => performance.timeOrigin + performance.now();
    const t0 = now() + 200;
    const results = this.workers.map((child) =>
      once<WorkerResult>(
        child,
        "stepResult",
        opts.warmupMs + opts.durationMs + opts.drainMs + 60_000,
      ),
    );
    this.workers.forEach((child, w) => {
      const command: StepCommand = {
        cmd: "step",
        k,
        t0,
        ...timing,
        rate: rate / this.workers.length,
        w,
        workers: this.workers.length,
        rooms: this.roomNames,
        members: this.members,
        payloadBytes: this.o.payloadBytes,
      };
      child.send(command);
    });
    const snapshot = () => ({
      t: now(),
      machine: machineCpu(),
      servers: accounted.map((a) => cpuTimes(a.pid) ?? { user: Number.NaN, sys: Number.NaN }),
      gen: this.workers.map((c) => cpuSeconds(c.pid ?? -1) ?? Number.NaN),
    });
    const tMeasure = t0 + opts.warmupMs;
    await new Promise((r) => setTimeout(r, Math.max(0, tMeasure - now())));
    hooks?.open();
    const a = snapshot();
    await new Promise((r) => setTimeout(r, Math.max(0, tMeasure + opts.durationMs - now())));
    const b = snapshot();
    hooks?.close();
    const rss = accounted.map((x) => rssBytes(x.pid) ?? 0);
    const r = await Promise.all(results);
    const wallS = (b.t - a.t) / 1000;
    const hist = histogram();
    const lag = histogram();
    const same = histogram();
    const cross = histogram();
    for (const x of r) {
      hist.add(hdr.decodeFromCompressedBase64(x.hist));
      lag.add(hdr.decodeFromCompressedBase64(x.lag));
      same.add(hdr.decodeFromCompressedBase64(x.histSame));
      cross.add(hdr.decodeFromCompressedBase64(x.histCross));
    }
    const byPath = (h: hdr.Histogram) => ({
      p50: ms(h, 50),
      p99: ms(h, 99),
      n: h.totalCount,
    });
    const sum = (f: keyof WorkerResult) => r.reduce((acc, x) => acc + (x[f] as number), 0);
    const used = (i: number, part: "user" | "sys") =>
      (b.servers[i]?.[part] ?? 0) - (a.servers[i]?.[part] ?? 0);
    const serverCpu = accounted.map((_, i) => used(i, "user") + used(i, "sys"));
    const serverCpuSec = serverCpu.reduce((x, y) => x + y, 0);
    const serverSysSec = accounted.reduce((acc, _, i) => acc + used(i, "sys"), 0);
    const perDelivery = (sec: number) =>
      inWindow > 0 ? round((1e6 * sec) / inWindow, 1) : Number.NaN;
    const genCpuSec = this.workers.reduce((acc, _, i) => acc + (b.gen[i]! - a.gen[i]!), 0);
    const machineBusy = b.machine.busy - a.machine.busy;
    const delivered = sum("delivered");
    const expected = sum("expected");
    const inWindow = sum("inWindow");
    const result: StepResult = {
      rate,
      sent: sum("sent"),
      sentMeasured: sum("sentMeasured"),
      expected,
      delivered,
      lossPct: expected > 0 ? round((100 * (expected - delivered)) / expected, 3) : 0,
      dupes: sum("dupes"),
      deliveredPerSec: round(inWindow / (opts.durationMs / 1000), 0),
      latencyMs: { p50: ms(hist, 50), p90: ms(hist, 90), p99: ms(hist, 99), max: ms(hist, 100) },
      latencyByPath: { same: byPath(same), cross: byPath(cross) },
      sendLagP99Ms: ms(lag, 99),
      acksFailed: sum("acksFailed"),
      acksMissing: sum("sent") - sum("acksOk") - sum("acksFailed"),
      disconnects: sum("disconnects"),
      serverCpuSec: round(serverCpuSec, 3),
      // Per delivery made in the window: the CPU the servers spent while making them.
      serverCpuUsPerDelivery: perDelivery(serverCpuSec),
      serverUserUsPerDelivery: perDelivery(serverCpuSec - serverSysSec),
      serverSysUsPerDelivery: perDelivery(serverSysSec),
      perProcessCpuPct: Object.fromEntries(
        accounted.map((x, i) => [x.role, round((100 * serverCpu[i]!) / wallS, 1)]),
      ),
      genCpuPct: round((100 * genCpuSec) / wallS, 1),
      otherCpuPct: round((100 * (machineBusy - serverCpuSec - genCpuSec)) / wallS, 1),
      serverRssMB: round(rss.reduce((x, y) => x + y, 0) / 2 ** 20, 1),
    };
    return result;
  }

  async close(): Promise<void> {
    const exits = this.workers.map(
      (c) =>
        new Promise<void>((resolve) =>
          c.exitCode !== null ? resolve() : c.once("exit", () => resolve()),
        ),
    );
    for (const c of this.workers) c.send({ cmd: "close" });
    const timer = setTimeout(() => {
      for (const c of this.workers) if (c.exitCode === null) c.kill("SIGKILL");
    }, 5000);
    await Promise.all(exits);
    clearTimeout(timer);
  }
}

interface WorkerResult {
  sent: number;
  sentMeasured: number;
  expected: number;
  delivered: number;
  inWindow: number;
  dupes: number;
  acksOk: number;
  acksFailed: number;
  disconnects: number;
  hist: string;
  histSame: string;
  histCross: string;
  lag: string;
}

export const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
