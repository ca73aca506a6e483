import { setTimeout as delay } from "node:timers/promises";
import { type AddressPlan, planAddresses } from "./addresses.js";
import { LoadClient } from "./client.js";
import type { FromWorker, ToWorker, WorkerPlan } from "./messages.js";
import { clientSpec, clientsOf, roomName } from "./plan.js";
import { ClientSource, DurableSource, Schedule, type Source } from "./publishers.js";
import { runStorm } from "./storm.js";
import { IntervalStats } from "./worker-stats.js";

/** How often a worker reports its counters. */
export const REPORT_INTERVAL_MS = 1000;
/** Connection attempts one worker has open at once while ramping up. */
const MAX_CONCURRENT_CONNECTS = 200;

/** Runs in a forked process: waits for its plan, then follows the coordinator's orders. */
export function runWorkerProcess(): void {
  const send = (message: FromWorker) => process.send?.(message);
  // Ctrl-C reaches the whole process group; the coordinator decides what happens.
  process.on("SIGINT", () => {});
  process.once("disconnect", () => process.exit(1));
  let worker: Worker | undefined;
  process.on("message", (message: ToWorker) => {
    if (message.type === "plan") {
      worker = new Worker(message.plan, send);
      worker.setup().catch((err: unknown) => {
        send({ type: "fatal", message: err instanceof Error ? err.message : String(err) });
      });
      return;
    }
    worker?.handle(message);
  });
}

class Worker {
  private readonly stats: IntervalStats;
  private readonly clients: LoadClient[] = [];
  private sources: Source[] = [];
  private schedule: Schedule | undefined;
  private stormStop: (() => Promise<void>) | undefined;
  private reporter: NodeJS.Timeout;
  private stopping: Promise<void> | undefined;
  private readonly addresses: AddressPlan;

  constructor(
    private readonly plan: WorkerPlan,
    private readonly send: (message: FromWorker) => void,
  ) {
    this.stats = new IntervalStats(plan.options.rooms);
    this.addresses = planAddresses(plan.options);
    this.reporter = setInterval(() => this.report(), REPORT_INTERVAL_MS);
  }

  private report(): void {
    const connected = this.clients.reduce((n, c) => n + (c.socket.connected ? 1 : 0), 0);
    this.send({ type: "stats", stats: this.stats.take(this.plan.index, connected) });
  }

  async setup(): Promise<void> {
    const { options, index, runId } = this.plan;
    if (options.scenario === "connect-storm") {
      this.send({ type: "ready", members: [], failed: 0 });
      return;
    }
    const mine = clientsOf(index, options.workers, options.clients);
    const intervalMs = (1000 * options.workers) / options.rampPerSec;
    const startedAt = Date.now();
    const members = new Array<number>(options.rooms).fill(0);
    let failed = 0;
    const pending = new Set<Promise<void>>();
    for (const [k, clientIndex] of mine.entries()) {
      const due = startedAt + k * intervalMs;
      if (due > Date.now()) await delay(due - Date.now());
      while (pending.size >= MAX_CONCURRENT_CONNECTS) await Promise.race(pending);
      const room = clientIndex % options.rooms;
      const client = new LoadClient(
        await clientSpec(options, runId, this.addresses, clientIndex),
        roomName(runId, room),
        options,
        this.stats,
      );
      this.clients.push(client);
      const started = client.start().then((member) => {
        if (member) members[room] = (members[room] ?? 0) + 1;
        else failed += 1;
      });
      pending.add(started);
      void started.finally(() => pending.delete(started));
    }
    await Promise.all(pending);

    const rooms = Array.from({ length: options.rooms }, (_, r) => roomName(runId, r));
    if (options.publishVia === "client") {
      // Publishers are the first P clients (i < P), so they sit in different rooms.
      this.sources = this.clients
        .filter((c) => c.spec.index < options.publishers)
        .map((c) => new ClientSource(c, rooms, this.stats, options.payloadBytes));
    } else {
      const url = options.urls[index % options.urls.length] as string;
      this.sources = [new DurableSource(`w${index}`, options, rooms, this.stats, url)];
    }
    this.report();
    this.send({ type: "ready", members, failed });
  }

  handle(message: ToWorker): void {
    const { options } = this.plan;
    if (message.type === "start") {
      this.alignReports(message.at);
      if (options.scenario === "connect-storm") {
        const endAt = message.at + message.durationMs;
        const storm = runStorm(this.plan, this.addresses, this.stats, endAt);
        this.stormStop = storm.stop;
        void storm.done.then(() => this.send({ type: "published" }));
        return;
      }
      const rate =
        options.publishVia === "client"
          ? options.rate / options.publishers
          : options.rate / options.workers;
      this.schedule = new Schedule(this.sources, rate, options.rooms);
      this.schedule.start(message.at, message.durationMs, () => this.send({ type: "published" }));
    } else if (message.type === "stop") {
      void this.stop().then(() => {
        this.report();
        this.send({ type: "stopped" });
      });
    } else if (message.type === "finish") {
      void this.finish();
    }
  }

  /** Reports from `at` on every whole interval, so that the timeline's seconds line up. */
  private alignReports(at: number): void {
    clearInterval(this.reporter);
    this.reporter = setTimeout(
      () => {
        this.report();
        this.reporter = setInterval(() => this.report(), REPORT_INTERVAL_MS);
      },
      Math.max(0, at - Date.now()),
    );
  }

  private stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.schedule?.stop();
      await this.stormStop?.();
      // Outstanding acks settle within their own timeout; wait for them, bounded.
      const deadline = Date.now() + 15_000;
      while (this.sources.some((s) => s.inFlight > 0) && Date.now() < deadline) await delay(20);
    })();
    return this.stopping;
  }

  private async finish(): Promise<void> {
    await this.stop();
    clearInterval(this.reporter);
    this.report();
    for (const client of this.clients) client.close();
    await Promise.all(this.sources.map((s) => s.close().catch(() => {})));
    // Keep-alive agents (long-polling) would hold the process open: exit once "done" is out.
    process.send?.({ type: "done" } satisfies FromWorker, undefined, {}, () => process.exit(0));
  }
}
