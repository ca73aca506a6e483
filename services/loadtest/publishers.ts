import { isSwitchboardError } from "../../core/errors.js";
import { createPublisher, type Publisher } from "../publisher/index.js";
import { ACK_TIMEOUT_MS, type LoadClient } from "./client.js";
import type { LoadtestOptions } from "./options.js";
import { LOADTEST_EVENT, type LoadtestMessage, now, padding } from "./payload.js";
import { errorKind, type IntervalStats } from "./worker-stats.js";

/** Publishes that may wait for their ack or confirmation at once, per worker. */
export const MAX_IN_FLIGHT = 10_000;

/** One stream of messages: a publisher key, and a sequence per room starting at 0. */
export interface Source {
  readonly key: string;
  /** Sends the next message to `room`; false when it could not be sent at all (not counted). */
  send(room: number): boolean;
  /** Publishes still waiting for their ack. */
  readonly inFlight: number;
  close(): Promise<void>;
}

abstract class BaseSource implements Source {
  inFlight = 0;
  private readonly seqs: number[];
  private readonly pad: string;

  constructor(
    readonly key: string,
    protected readonly rooms: string[],
    protected readonly stats: IntervalStats,
    payloadBytes: number,
  ) {
    this.seqs = new Array<number>(rooms.length).fill(0);
    this.pad = padding(payloadBytes, key);
  }

  protected next(room: number): LoadtestMessage {
    const s = this.seqs[room] ?? 0;
    this.seqs[room] = s + 1;
    return { k: this.key, s, t: now(), x: this.pad };
  }

  /** A send the gateway accepted, or whose fate is unknown: its deliveries are expected. */
  protected counted(room: number, self: boolean): void {
    this.stats.countedByRoom[room] = (this.stats.countedByRoom[room] ?? 0) + 1;
    if (self) this.stats.selfByRoom[room] = (this.stats.selfByRoom[room] ?? 0) + 1;
  }

  abstract send(room: number): boolean;
  async close(): Promise<void> {}
}

/** A client that publishes through the client protocol (`publish` with an ack). */
export class ClientSource extends BaseSource {
  constructor(
    private readonly client: LoadClient,
    rooms: string[],
    stats: IntervalStats,
    payloadBytes: number,
  ) {
    super(`c${client.spec.index}`, rooms, stats, payloadBytes);
  }

  send(room: number): boolean {
    const { socket } = this.client;
    if (!socket.connected) {
      this.stats.error("publish:disconnected");
      return false;
    }
    const name = this.rooms[room] as string;
    const self = this.client.member && this.client.room === name;
    const data = this.next(room);
    this.stats.sent += 1;
    this.inFlight += 1;
    socket
      .timeout(ACK_TIMEOUT_MS)
      .emit(
        "publish",
        { room: name, event: LOADTEST_EVENT, data },
        (err: Error | null, reply: { ok?: unknown; error?: unknown } | undefined) => {
          this.inFlight -= 1;
          if (err) {
            // No ack: the gateway may have broadcast it before it went away.
            this.stats.error("publish:no_ack");
            this.counted(room, self);
          } else if (reply?.ok === true) {
            this.counted(room, self);
          } else {
            this.stats.error(`publish:${String(reply?.error ?? "unexpected reply")}`);
          }
        },
      );
    return true;
  }
}

/** The durable publish paths (RabbitMQ queue, Redis stream, HTTP), through the publisher library. */
export class DurableSource extends BaseSource {
  private readonly publisher: Publisher;

  constructor(
    key: string,
    options: LoadtestOptions,
    rooms: string[],
    stats: IntervalStats,
    gatewayUrl: string,
  ) {
    super(key, rooms, stats, options.payloadBytes);
    const common = { timeoutMs: ACK_TIMEOUT_MS };
    if (options.publishVia === "amqp") {
      this.publisher = createPublisher({
        via: "amqp",
        url: options.amqpUrl,
        ...(options.amqpQueue === undefined ? {} : { queue: options.amqpQueue }),
        ...common,
      });
    } else if (options.publishVia === "redis") {
      this.publisher = createPublisher({
        via: "redis",
        url: options.redisUrl,
        ...(options.redisStream === undefined ? {} : { stream: options.redisStream }),
        ...common,
      });
    } else {
      this.publisher = createPublisher({
        via: "http",
        url: gatewayUrl,
        apiKey: options.apiKey ?? "",
        ...common,
      });
    }
  }

  send(room: number): boolean {
    const data = this.next(room);
    this.stats.sent += 1;
    this.inFlight += 1;
    this.publisher
      .publish({ rooms: [this.rooms[room] as string], event: LOADTEST_EVENT, data })
      .then(
        () => this.counted(room, false),
        (err: unknown) => {
          this.stats.error(errorKind("publish", isSwitchboardError(err) ? err.code : err));
          // A confirmation that timed out may still have been queued.
          if (isSwitchboardError(err, "SWB_ERR_PUBLISH_TIMEOUT")) this.counted(room, false);
        },
      )
      .finally(() => {
        this.inFlight -= 1;
      });
    return true;
  }

  override close(): Promise<void> {
    return this.publisher.close();
  }
}

/**
 * Sends at a fixed rate from several sources, each to the rooms in turn, for `durationMs` from
 * `startAt`. Falling behind (a slow event loop, too many in flight) is caught up later, never
 * beyond the run's total; what is not sent by the end is simply not sent.
 */
export class Schedule {
  private timer: NodeJS.Timeout | undefined;
  private readonly sentBy: number[];
  private readonly nextRoom: number[];

  constructor(
    private readonly sources: Source[],
    private readonly ratePerSource: number,
    private readonly rooms: number,
  ) {
    this.sentBy = new Array<number>(sources.length).fill(0);
    // Stagger the first room so that sources do not all hit room 0 together.
    this.nextRoom = sources.map((_, i) => i % rooms);
  }

  start(startAt: number, durationMs: number, onEnd: () => void): void {
    const total = Math.floor((this.ratePerSource * durationMs) / 1000);
    const tick = () => {
      const elapsed = Math.max(0, Date.now() - startAt);
      const due = Math.min(total, Math.floor((elapsed / 1000) * this.ratePerSource));
      let inFlight = this.sources.reduce((sum, s) => sum + s.inFlight, 0);
      for (const [i, source] of this.sources.entries()) {
        // At most 1000 per source and tick, so that receiving keeps getting its turn.
        let budget = 1000;
        while ((this.sentBy[i] ?? 0) < due && budget-- > 0 && inFlight < MAX_IN_FLIGHT) {
          const room = this.nextRoom[i] ?? 0;
          this.nextRoom[i] = (room + 1) % this.rooms;
          this.sentBy[i] = (this.sentBy[i] ?? 0) + 1;
          if (source.send(room)) inFlight += 1;
        }
      }
      if (elapsed >= durationMs) {
        this.stop();
        onEnd();
      }
    };
    this.timer = setInterval(tick, 5);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
