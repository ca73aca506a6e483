import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { onTestFinished } from "vitest";
import type { LoadtestReport } from "../../services/loadtest/report.js";
import { sourceCliArgv } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";

/** A few seconds, a few clients: enough to prove the counting, not to measure anything. */
export const SMALL_RUN: readonly string[] = [
  "--clients",
  "16",
  "--rooms",
  "4",
  "--rate",
  "20",
  "--duration",
  "2s",
  "--workers",
  "2",
];

/** One CLI run takes a few seconds; a loaded machine may need many more. */
export const RUN_TIMEOUT_MS = 120_000;

const BUILT_CLI = fileURLToPath(new URL("../../bin/switchboard.js", import.meta.url));
const BUILT_ENTRY = fileURLToPath(new URL("../../dist/cli/entry.js", import.meta.url));

export interface LoadtestRunOptions {
  /**
   * Run the installed entry point (bin/switchboard.js, compiled dist/, workers forked from
   * JavaScript) instead of the TypeScript sources. `npm test` builds dist/ first.
   */
  built?: boolean;
}

/** A load-test run as a user starts it: the real CLI in its own process. */
export interface LoadtestRun {
  /** Resolves when the CLI exited. */
  readonly exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
  /** Waits until stderr shows `text` (bounded). */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** Sends a signal to the CLI process (by its pid), as Ctrl-C does with SIGINT. */
  signal(signal: NodeJS.Signals): void;
  /** The JSON report, once the run exited. */
  report(): Promise<LoadtestReport>;
  readonly dir: string;
}

/** Starts `switchboard loadtest ARGS --json <tmp>/report.json --html <tmp>/report.html`. */
export async function startLoadtest(
  args: string[],
  options: LoadtestRunOptions = {},
): Promise<LoadtestRun> {
  if (options.built && !existsSync(BUILT_ENTRY)) {
    throw new Error("dist/ is not built: run `npm run build` first");
  }
  const dir = await mkdtemp(join(tmpdir(), "switchboard-loadtest-"));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  const argv = [
    "loadtest",
    ...args,
    "--json",
    join(dir, "report.json"),
    "--html",
    join(dir, "report.html"),
  ];
  const child = spawn(
    process.execPath,
    options.built ? [BUILT_CLI, ...argv] : sourceCliArgv(argv),
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  // Bounded: a run that hangs is killed (by its pid) and the test sees a null exit code.
  const guard = setTimeout(() => child.kill("SIGKILL"), 120_000);
  void exited.then(() => clearTimeout(guard));
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  return {
    exited,
    dir,
    stdout: () => stdout,
    signal: (signal) => {
      if (child.exitCode === null) child.kill(signal);
    },
    stderr: () => stderr,
    waitForOutput: async (text, timeoutMs = 60_000) => {
      await waitFor(() => stderr.includes(text) || child.exitCode !== null, {
        timeoutMs,
        message: `loadtest output "${text}"`,
      });
      if (!stderr.includes(text)) {
        throw new Error(`loadtest exited before "${text}":\n${stderr}\n${stdout}`);
      }
    },
    report: async () => {
      await exited;
      return JSON.parse(await readFile(join(dir, "report.json"), "utf8")) as LoadtestReport;
    },
  };
}

/** Runs the CLI to its end; returns the exit code and the JSON report. */
export async function runLoadtest(
  args: string[],
  options: LoadtestRunOptions = {},
): Promise<{ code: number | null; report: LoadtestReport; run: LoadtestRun }> {
  const run = await startLoadtest(args, options);
  const code = await run.exited;
  if (code !== 0 && code !== 1) {
    throw new Error(`loadtest exited with ${code}:\n${run.stderr()}\n${run.stdout()}`);
  }
  return { code, report: await run.report(), run };
}
