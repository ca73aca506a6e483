import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { availableParallelism, loadavg } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { planAddresses } from "./addresses.js";
import { RunAggregator } from "./aggregate.js";
import { CONNECT_TIMEOUT_MS } from "./client.js";
import { renderHtml } from "./html.js";
import type { FromWorker, ToWorker } from "./messages.js";
import type { LoadtestOptions } from "./options.js";
import { createProgress, type Phase } from "./progress.js";
import { buildReport, type LoadtestReport } from "./report.js";

export interface RunResult {
  report: LoadtestReport;
  exitCode: number;
}

export interface RunIo {
  /** Where the summary goes (stdout). */
  out: NodeJS.WriteStream;
  /** Where progress and warnings go (stderr). */
  err: NodeJS.WriteStream;
}

/** Publishing starts this long after the order, so that every worker begins together. */
const START_DELAY_MS = 200;
/** How long after the end of the duration a worker may still be sending what was due. */
const PUBLISH_GRACE_MS = 5000;
/** Ctrl-C cuts the drain short to this. */
const INTERRUPTED_DRAIN_MS = 2000;

interface WorkerHandle {
  index: number;
  child: ChildProcess;
  exited: boolean;
  /** Messages by type, as they came (ready, stopped, done). */
  seen: Set<FromWorker["type"]>;
}

/**
 * Runs one load test: forks the workers, lets them connect (setup), starts publishing on every
 * worker at once, stops after the duration (or Ctrl-C), waits for late messages, collects the
 * last counters and builds the report. Every wait is bounded.
 */
export async function runLoadtest(options: LoadtestOptions, io: RunIo): Promise<RunResult> {
  const runId = randomBytes(4).toString("hex");
  const startedAt = new Date();
  const agg = new RunAggregator(options.rooms);
  const progress = createProgress(io.err);
  const addresses = planAddresses(options);
  if (addresses.warning) progress.log(`loadtest: warning: ${addresses.warning}`);
  let interrupted = false;
  let phase: Phase = "connecting";
  const onSigint = () => {
    if (interrupted) {
      progress.stop();
      io.err.write("loadtest: interrupted twice, exiting without a report\n");
      process.exit(130);
    }
    interrupted = true;
    progress.log("loadtest: interrupted, writing the report so far (Ctrl-C again to quit now)");
  };
  process.on("SIGINT", onSigint);

  const workers = Array.from({ length: options.workers }, (_, index) => startWorker(index));
  const fatal: string[] = [];
  let readyMembers = 0;
  let lastStats = { sent: 0, delivered: 0, at: Date.now() };
  const rates = { sentPerSec: 0, deliveredPerSec: 0 };

  for (const worker of workers) {
    worker.child.on("message", (message: FromWorker) => {
      worker.seen.add(message.type);
      if (message.type === "stats") agg.add(message.stats);
      else if (message.type === "ready") {
        agg.addMembers(message.members, message.failed);
        readyMembers += message.members.reduce((a, b) => a + b, 0);
      } else if (message.type === "fatal") fatal.push(`worker ${worker.index}: ${message.message}`);
    });
    worker.child.once("exit", (code, signal) => {
      worker.exited = true;
      if (!worker.seen.has("done")) {
        agg.errors.set(
          "generator:worker exited",
          (agg.errors.get("generator:worker exited") ?? 0) + 1,
        );
        if (code !== 0)
          fatal.push(`worker ${worker.index} exited (code ${code}, signal ${signal})`);
      }
    });
    send(worker, { type: "plan", plan: { index: worker.index, runId, options } });
  }

  const ticker = setInterval(() => {
    const now = Date.now();
    const seconds = (now - lastStats.at) / 1000;
    if (seconds >= 1) {
      rates.sentPerSec = Math.round((agg.sent - lastStats.sent) / seconds);
      rates.deliveredPerSec = Math.round((agg.delivered - lastStats.delivered) / seconds);
      lastStats = { sent: agg.sent, delivered: agg.delivered, at: now };
    }
    const publishing = phase !== "connecting";
    const elapsed = agg.startAt ? Math.max(0, Math.floor((now - agg.startAt) / 1000)) : 0;
    progress.update({
      phase,
      value: publishing ? Math.min(elapsed, options.durationMs / 1000) : agg.connectAttempts,
      total: publishing ? Math.ceil(options.durationMs / 1000) : options.clients,
      connected: agg.connectedNow,
      sentPerSec: rates.sentPerSec,
      deliveredPerSec: rates.deliveredPerSec,
      p99: Math.round(agg.latency.at(99) * 10) / 10,
      errors: agg.errorCount,
    });
  }, 250);

  const live = () => workers.filter((w) => !w.exited);
  const allSeen = (type: FromWorker["type"]) => live().every((w) => w.seen.has(type));
  try {
    // Setup: every client connected (or failed) and joined.
    const setupMs = (options.clients / options.rampPerSec) * 1000 + CONNECT_TIMEOUT_MS * 2 + 30_000;
    await until(() => allSeen("ready") || fatal.length > 0 || interrupted, setupMs);
    if (fatal.length > 0 && live().length === 0) throw new Error(fatal.join("; "));

    // A worker that failed in setup would leave its share unsent: no run is better than a skewed one.
    if (
      fatal.length === 0 &&
      !interrupted &&
      (options.scenario === "connect-storm" || readyMembers > 0)
    ) {
      phase = options.scenario === "connect-storm" ? "storming" : "publishing";
      const at = Date.now() + START_DELAY_MS;
      agg.startAt = at;
      for (const worker of live())
        send(worker, { type: "start", at, durationMs: options.durationMs });
      // Each worker says when its last message is out; a worker that cannot keep up is cut at
      // a bound, and what it did not send is simply not counted.
      await until(
        () => interrupted || allSeen("published"),
        START_DELAY_MS + options.durationMs + PUBLISH_GRACE_MS,
      );
    }
    if (agg.startAt !== undefined) {
      agg.stopAt = Math.max(agg.startAt, Math.min(Date.now(), agg.startAt + options.durationMs));
    }
    for (const worker of live()) send(worker, { type: "stop" });
    await until(() => allSeen("stopped"), 20_000);
    if (options.scenario === "steady" && agg.startAt !== undefined) {
      phase = "draining";
      const drainMs = interrupted
        ? Math.min(options.drainMs, INTERRUPTED_DRAIN_MS)
        : options.drainMs;
      await until(() => agg.delivered >= agg.expected || live().length === 0, drainMs);
    }
    phase = "done";
    for (const worker of live()) send(worker, { type: "finish" });
    await until(() => allSeen("done") && live().length === 0, 10_000);
  } finally {
    clearInterval(ticker);
    process.off("SIGINT", onSigint);
    for (const worker of live()) worker.child.kill("SIGKILL");
    progress.stop();
  }

  const report = buildReport(agg, {
    options,
    runId,
    startedAt,
    interrupted,
    cores: availableParallelism(),
    loadAverage: loadavg(),
    localAddresses: addresses.addresses,
  });
  if (options.jsonFile) await writeFile(options.jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  if (options.htmlFile) await writeFile(options.htmlFile, renderHtml(report));
  for (const message of fatal) io.err.write(`loadtest: ${message}\n`);
  let exitCode = 0;
  if (fatal.length > 0)
    exitCode = 70; // EX_SOFTWARE
  else if (report.thresholds.failures.length > 0) exitCode = 1;
  else if (interrupted) exitCode = 130;
  else if (options.scenario === "steady" && report.connections.members === 0) exitCode = 69;
  return { report, exitCode };
}

function send(worker: WorkerHandle, message: ToWorker): void {
  if (worker.exited || !worker.child.connected) return;
  worker.child.send(message, (err) => {
    // The worker died in between: its exit is counted where it is observed.
    if (err) return;
  });
}

/**
 * Forks one worker; under tsx (the TypeScript sources) it loads tsx too. In the built command
 * worker-main.js sits beside the bundle's modules in dist/cli/ (an entry point of bundle.mjs).
 */
function startWorker(index: number): WorkerHandle {
  const fromSources = import.meta.url.endsWith(".ts");
  const entry = fileURLToPath(
    new URL(`./worker-main.${fromSources ? "ts" : "js"}`, import.meta.url),
  );
  // An absolute URL: `--import tsx` would resolve from the working directory, not this package.
  const execArgv = fromSources ? ["--import", import.meta.resolve("tsx")] : [];
  const child = fork(entry, [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"] });
  return { index, child, exited: false, seen: new Set() };
}

/** Waits until `condition` holds or `timeoutMs` passed (no error: the caller reports). */
async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await delay(25);
}
