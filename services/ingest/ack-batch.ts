/** The one call an ack batch makes on its channel (amqplib's `Channel#ack`). */
export interface Acknowledger<M> {
  ack(message: M, allUpTo?: boolean): void;
}

/**
 * Acknowledgements in batches: one `multiple` ack for the last settled message covers every one
 * before it on the channel, which is safe because messages settle strictly in delivery order,
 * and saves the broker one (replicated) settlement per message. A batch is sent when `every`
 * messages wait for it, after the current burst (`later`), or before the channel is given up
 * (`flush`). A message is acknowledged only once `settled` was called for it, that is after it
 * was handed to the backplane or dead-lettered.
 */
export class AckBatch<M> {
  readonly #channel: Acknowledger<M>;
  readonly #every: number;
  #last: M | undefined;
  #waiting = 0;
  #timer: NodeJS.Immediate | undefined;

  constructor(channel: Acknowledger<M>, every: number) {
    this.#channel = channel;
    this.#every = Math.max(1, every);
  }

  /** `message` is done with: acknowledge it, with the ones settled before it, soon. */
  settled(message: M): void {
    this.#last = message;
    if (++this.#waiting >= this.#every) this.flush();
  }

  /** Acknowledges what was settled once the current burst of deliveries has been taken. */
  later(): void {
    if (this.#last !== undefined && this.#timer === undefined) {
      this.#timer = setImmediate(() => this.flush());
    }
  }

  /** Acknowledges what was settled, now. */
  flush(): void {
    if (this.#timer !== undefined) {
      clearImmediate(this.#timer);
      this.#timer = undefined;
    }
    const message = this.#last;
    if (message === undefined) return;
    this.#last = undefined;
    this.#waiting = 0;
    try {
      this.#channel.ack(message, true);
    } catch {
      // The channel is closed: the broker requeues these messages, delivered at least once.
    }
  }
}
