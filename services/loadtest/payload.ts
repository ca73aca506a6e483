/** The event every load-test message arrives as. */
export const LOADTEST_EVENT = "loadtest";

/**
 * A message's data: `k` the stream (publisher key), `s` its sequence in that stream and room,
 * `t` the send time (wall-clock ms, sub-ms precision), `x` padding up to the payload size.
 */
export interface LoadtestMessage {
  k: string;
  s: number;
  t: number;
  x: string;
}

/** Wall-clock milliseconds with sub-ms precision, comparable across this machine's processes. */
export const now = (): number => performance.timeOrigin + performance.now();

/** Padding so that the message's JSON is about `payloadBytes` long. */
export function padding(payloadBytes: number, key: string): string {
  const skeleton = JSON.stringify({ k: key, s: 1_000_000, t: now(), x: "" });
  return "x".repeat(Math.max(0, payloadBytes - Buffer.byteLength(skeleton)));
}

export function isLoadtestMessage(value: unknown): value is LoadtestMessage {
  if (typeof value !== "object" || value === null) return false;
  const m = value as Record<string, unknown>;
  return (
    typeof m.k === "string" &&
    Number.isInteger(m.s) &&
    (m.s as number) >= 0 &&
    typeof m.t === "number" &&
    Number.isFinite(m.t)
  );
}
