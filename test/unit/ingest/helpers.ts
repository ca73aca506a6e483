import { onTestFinished } from "vitest";
import type { PublishCommand } from "../../../core/publish-command.js";
import type { Sleep } from "../../../services/ingest/sessions.js";
import type { Ingest, IngestOutcome } from "../../../services/ingest/types.js";

/** A valid command `c-<n>` whose data is `{n}`, as JSON. */
export const command = (n: number, data: unknown = { n }) =>
  JSON.stringify({ v: 1, id: `c-${n}`, event: "message", data });

/**
 * A sleep that records every delay asked for and waits only a millisecond, so that a test sees
 * the backoff a consumer chose without waiting for it.
 */
export function recordingSleep(): { sleep: Sleep; delays: number[] } {
  const delays: number[] = [];
  const sleep: Sleep = (ms, signal) => {
    delays.push(ms);
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      setTimeout(resolve, 1);
    });
  };
  return { sleep, delays };
}

/**
 * A `handle` that records the ids it was given (`calls`) and the ones it handed over
 * (`delivered`); `behave` may throw (a failed hand-over) or return a promise (an async one).
 */
export function recordingHandler(
  behave: (command: PublishCommand) => void | Promise<void> = () => {},
) {
  const calls: string[] = [];
  const delivered: string[] = [];
  const handle = (command: PublishCommand): void | Promise<void> => {
    const id = command.id ?? "";
    calls.push(id);
    const result = behave(command);
    if (result === undefined) {
      delivered.push(id);
      return;
    }
    return result.then(() => void delivered.push(id));
  };
  return { handle, calls, delivered };
}

/** Counts of each outcome a consumer reported. */
export function outcomes() {
  const counts: Record<IngestOutcome, number> = { delivered: 0, dead: 0, retried: 0 };
  const onOutcome = (outcome: IngestOutcome) => {
    counts[outcome] += 1;
  };
  return { counts, onOutcome };
}

export function deferred() {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Closes the consumer when the test ends. */
export function closeAfter<T extends Ingest>(ingest: T): T {
  onTestFinished(() => ingest.close());
  return ingest;
}

/**
 * The first `upTo` delays grow: none shorter than the one before it (with jitter, a doubling
 * backoff never goes down), and the last at least twice the first.
 */
export function isGrowing(delays: number[], upTo: number): boolean {
  const first = delays.slice(0, upTo);
  return (
    first.length === upTo &&
    first.every((ms, i) => i === 0 || ms >= first[i - 1]!) &&
    first.at(-1)! >= 2 * first[0]!
  );
}
