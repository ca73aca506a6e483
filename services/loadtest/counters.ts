import { LatencyHistogram } from "./histogram.js";

/**
 * The counters a worker reports each interval (`IntervalStats`) and the coordinator sums over
 * the run (`RunAggregator`): one set, so both sides count the same things.
 */
export class LoadCounters {
  connectAttempts = 0;
  connectsOk = 0;
  disconnects = 0;
  reconnects = 0;
  sent = 0;
  delivered = 0;
  duplicates = 0;
  outOfOrder = 0;
  /** Sends that count for delivery (accepted, or unconfirmed), per room index. */
  countedByRoom: number[];
  /** Of those, sends whose publisher is itself a member of the room (it does not receive them). */
  selfByRoom: number[];
  readonly latency = new LatencyHistogram();
  readonly connectTime = new LatencyHistogram();

  constructor(readonly rooms: number) {
    this.countedByRoom = new Array<number>(rooms).fill(0);
    this.selfByRoom = new Array<number>(rooms).fill(0);
  }

  /** Sets every counter back to zero (new per-room arrays: a taken report keeps the old ones). */
  protected resetCounters(): void {
    this.connectAttempts = 0;
    this.connectsOk = 0;
    this.disconnects = 0;
    this.reconnects = 0;
    this.sent = 0;
    this.delivered = 0;
    this.duplicates = 0;
    this.outOfOrder = 0;
    this.countedByRoom = new Array<number>(this.rooms).fill(0);
    this.selfByRoom = new Array<number>(this.rooms).fill(0);
    this.latency.reset();
    this.connectTime.reset();
  }
}
