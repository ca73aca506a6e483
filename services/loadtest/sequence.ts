/**
 * `in-order`: the highest so far; `out-of-order`: fills a gap left by a later one that came
 * first; `duplicate`: a sequence this stream already delivered.
 */
export type Arrival = "in-order" | "out-of-order" | "duplicate";

/** Gaps remembered per stream; beyond it, older gaps are forgotten (reported as untracked). */
const MAX_GAPS = 100_000;

/**
 * Classifies the messages of one stream (one publisher's sequence to one room, as one client
 * receives them). Sequences start at 0. Memory is the number of messages still missing, not the
 * number received: a gap is remembered until the late message fills it.
 */
export class SequenceTracker {
  private highest = -1;
  private readonly gaps = new Set<number>();
  /** Gaps forgotten because MAX_GAPS was reached (their late arrival would count as duplicate). */
  untracked = 0;

  receive(seq: number): Arrival {
    if (seq > this.highest) {
      // A skip ahead is not disorder yet: the skipped ones may be lost. Only a late arrival is.
      const from = Math.max(this.highest + 1, seq - MAX_GAPS);
      this.untracked += from - (this.highest + 1);
      for (let missing = from; missing < seq; missing++) this.remember(missing);
      this.highest = seq;
      return "in-order";
    }
    if (this.gaps.delete(seq)) return "out-of-order";
    return "duplicate";
  }

  private remember(seq: number): void {
    if (this.gaps.size >= MAX_GAPS) {
      const oldest = this.gaps.values().next().value;
      if (oldest !== undefined) this.gaps.delete(oldest);
      this.untracked += 1;
    }
    this.gaps.add(seq);
  }
}
