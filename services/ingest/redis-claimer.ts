import type { StreamClient, StreamEntry, StreamGroup } from "./redis-stream-client.js";

export interface PendingClaimerOptions {
  /** An entry another consumer took this long ago without acknowledging it is taken over, in ms. */
  minIdleMs: number;
  /** Entries claimed per call. */
  count: number;
  /** After a full pass over the pending entries, the next pass starts this much later, in ms. */
  intervalMs: number;
  /** @default Date.now */
  now?: () => number;
}

/**
 * Takes over the pending entries of dead consumers: a gateway that died (or hung) leaves what it
 * had read unacknowledged in the group; once an entry is idle for `minIdleMs`, XAUTOCLAIM makes
 * it this consumer's, and the consumer handles it as its own. One pass walks the whole pending
 * list with XAUTOCLAIM's cursor, `count` entries at a time; passes are `intervalMs` apart.
 */
export class PendingClaimer {
  readonly #client: StreamClient;
  readonly #target: StreamGroup;
  readonly #options: PendingClaimerOptions;
  readonly #now: () => number;
  #cursor = "0-0";
  #nextPassAt = 0;

  constructor(client: StreamClient, target: StreamGroup, options: PendingClaimerOptions) {
    this.#client = client;
    this.#target = target;
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Claims the next entries when a pass is due; [] when none is due or nothing is idle. */
  async claim(): Promise<StreamEntry[]> {
    if (this.#cursor === "0-0" && this.#now() < this.#nextPassAt) return [];
    const { cursor, entries } = await this.#client.autoClaim(this.#target, {
      minIdleMs: this.#options.minIdleMs,
      cursor: this.#cursor,
      count: this.#options.count,
    });
    this.#cursor = cursor;
    if (cursor === "0-0") this.#nextPassAt = this.#now() + this.#options.intervalMs;
    return entries;
  }

  /** Starts the next pass from the beginning of the pending list, now (after a reconnect). */
  restart(): void {
    this.#cursor = "0-0";
    this.#nextPassAt = 0;
  }
}
