/**
 * Retry delays and waits. Every reconnect and retry in Switchboard uses this one formula:
 * exponential from `initialMs`, capped at `maxMs`, with "equal jitter" (a uniformly random delay
 * between half of that and all of it), so that many processes that lost one broker together do not
 * come back in lock step, and a delay never exceeds `maxMs`.
 */

export interface BackoffOptions {
  /** Delay before the first retry, before jitter, in ms. */
  initialMs: number;
  /** Upper bound of any delay, in ms. */
  maxMs: number;
}

/** The delay before retry number `attempt` (0 for the first), in whole ms. */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const base = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, attempt));
  return Math.round(base / 2 + (Math.random() * base) / 2);
}

/** A stateful sequence of `backoffDelay`s: `next()` for each failure, `reset()` after a success. */
export function backoff(options: BackoffOptions): { next(): number; reset(): void } {
  let attempt = 0;
  return {
    next: () => backoffDelay(attempt++, options),
    reset: () => {
      attempt = 0;
    },
  };
}

/** A sleep that `signal` cuts short (resolves, never rejects). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done);
  });
}

/**
 * `promise`, bounded by `ms`. With `onTimeout`, a timeout rejects with the error it returns;
 * without, it resolves `undefined` (for waits that may give up, like a close). The timer is cleared
 * either way and never keeps the process alive.
 */
export function withTimeout<T>(
  promise: PromiseLike<T>,
  ms: number,
  onTimeout: () => Error,
): Promise<T>;
export function withTimeout<T>(promise: PromiseLike<T>, ms: number): Promise<T | undefined>;
export function withTimeout<T>(
  promise: PromiseLike<T>,
  ms: number,
  onTimeout?: () => Error,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve, reject) => {
    timer = setTimeout(() => (onTimeout ? reject(onTimeout()) : resolve(undefined)), ms);
    timer.unref?.();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
