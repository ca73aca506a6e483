import { setTimeout as delay } from "node:timers/promises";

/** Polls `condition` until it is truthy; fails after `timeoutMs` with `message`. */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 20, message = "condition" } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}${cause}`);
    }
    await delay(intervalMs);
  }
}

/** Resolves with the event's arguments, or rejects after `timeoutMs`. */
export function nextEvent<T extends unknown[]>(
  emitter: {
    once(event: string, listener: (...args: T) => void): unknown;
    off(event: string, listener: (...args: T) => void): unknown;
  },
  event: string,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for event "${event}"`));
    }, timeoutMs);
    const listener = (...args: T) => {
      clearTimeout(timer);
      resolve(args);
    };
    emitter.once(event, listener);
  });
}
