import cliProgress from "cli-progress";

export type Phase = "connecting" | "publishing" | "storming" | "draining" | "done";

export interface ProgressSnapshot {
  phase: Phase;
  /** Connecting: clients started so far of `total`; later: seconds elapsed of `total`. */
  value: number;
  total: number;
  connected: number;
  sentPerSec: number;
  deliveredPerSec: number;
  p99: number;
  errors: number;
}

export interface Progress {
  update(snapshot: ProgressSnapshot): void;
  /** A line that must not be mixed with the bar (warnings). */
  log(line: string): void;
  stop(): void;
}

/** Plain lines at most this often when the output is not a terminal (CI logs). */
const PLAIN_INTERVAL_MS = 5000;

const describe = (s: ProgressSnapshot) =>
  `phase=${s.phase} connected=${s.connected} sent/s=${s.sentPerSec} delivered/s=${s.deliveredPerSec} ` +
  `p99=${s.p99}ms errors=${s.errors}`;

/**
 * A live bar in a terminal (cli-progress), plain periodic lines otherwise: one line at every
 * phase change and every few seconds in between.
 */
export function createProgress(stream: NodeJS.WriteStream): Progress {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format:
          "{phase} [{bar}] {value}/{total} | conn {connected} | sent {sentPerSec}/s | " +
          "dlv {deliveredPerSec}/s | p99 {p99} ms | err {errors}",
        hideCursor: true,
        clearOnComplete: false,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(s) {
        const payload = { ...s };
        if (!started) {
          bar.start(s.total, s.value, payload);
          started = true;
        } else {
          bar.setTotal(s.total);
          bar.update(s.value, payload);
        }
      },
      log(line) {
        if (started) {
          // Keep the bar below the message.
          stream.write("\n");
        }
        stream.write(`${line}\n`);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastPhase: Phase | undefined;
  let lastAt = 0;
  return {
    update(s) {
      const at = Date.now();
      if (s.phase === lastPhase && at - lastAt < PLAIN_INTERVAL_MS) return;
      lastPhase = s.phase;
      lastAt = at;
      stream.write(`loadtest ${describe(s)} progress=${s.value}/${s.total}\n`);
    },
    log(line) {
      stream.write(`${line}\n`);
    },
    stop() {},
  };
}
