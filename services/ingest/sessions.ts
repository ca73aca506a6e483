/** Waits `ms`, or less when `signal` aborts; never rejects. */
export type Sleep = (ms: number, signal: AbortSignal) => Promise<void>;

/** Reconnect delays, in ms: `next()` after each failure, `reset()` once a session works. */
export interface Delays {
  next(): number;
  reset(): void;
}

export interface SessionLoopOptions {
  signal: AbortSignal;
  /** While false no session is started: the commands are left to other gateways. */
  isReady: () => boolean;
  /** How often readiness is polled while not ready, in ms. */
  readyPollMs: number;
  delays: Delays;
  sleep: Sleep;
  /**
   * One session: connects, consumes, and settles when its connection is lost, when the gateway
   * stops being ready, or when `signal` aborts. It calls `healthy()` once it consumes, which
   * resets the backoff.
   */
  session: (healthy: () => void) => Promise<void>;
  /** A session that could not start or broke. */
  onError: (err: unknown) => void;
}

/**
 * Runs sessions one after the other until `signal` aborts, with a backoff delay before each new
 * one: the shape both consumers share (connect, set up, consume until the connection dies, wait,
 * start over), so that reconnecting is written, and tested, once.
 */
export async function runSessions(options: SessionLoopOptions): Promise<void> {
  const { signal, delays, sleep } = options;
  while (!signal.aborted) {
    if (!options.isReady()) {
      await sleep(options.readyPollMs, signal);
      continue;
    }
    try {
      await options.session(() => delays.reset());
    } catch (err) {
      if (signal.aborted) break;
      options.onError(err);
    }
    if (signal.aborted) break;
    await sleep(delays.next(), signal);
  }
}
