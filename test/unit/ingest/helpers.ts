import { onTestFinished } from "vitest";
import type { PublishCommand } from "../../../services/gateway/publish-command.js";
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

/** `delays` grow: each one more than the one before it (jitter included), up to `upTo`. */
export function isGrowing(delays: number[], upTo: number): boolean {
  return delays.slice(0, upTo).every((ms, i) => i === 0 || ms > delays[i - 1]!);
}
