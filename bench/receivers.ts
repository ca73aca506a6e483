import type { Socket } from "socket.io-client";
import { connectClient, request } from "../test/support/clients.js";
import { waitFor } from "../test/support/wait.js";
import { type LatencySummary, now, round, summarize } from "./stats.js";

/**
 * Clients joined to one room on every gateway, counting the `bench` events ({ t: send time })
 * they receive: how many, when the last arrived, and each one's latency.
 */
export class Receivers {
  delivered = 0;
  lastAt = 0;
  readonly latencies: number[] = [];

  private constructor(readonly sockets: Socket[]) {}

  /**
   * Connects `perGateway` clients to each of `urls` and joins them to `room`. Each socket is
   * pushed onto `sockets` as soon as it connects, so the caller's cleanup closes it even when a
   * later connect or join fails.
   */
  static async join(
    urls: readonly string[],
    perGateway: number,
    room: string,
    sockets: Socket[],
  ): Promise<Receivers> {
    const receivers = new Receivers(sockets);
    for (const url of urls) {
      for (let i = 0; i < perGateway; i++) {
        const socket = await connectClient(url);
        sockets.push(socket);
        socket.on("bench", (data: { t: number }) => {
          receivers.lastAt = now();
          receivers.latencies.push(receivers.lastAt - data.t);
          receivers.delivered += 1;
        });
        await request(socket, "join", room);
      }
    }
    return receivers;
  }

  /** Forgets the previous run's deliveries. */
  reset(): void {
    this.delivered = 0;
    this.latencies.length = 0;
  }

  /**
   * Waits until `expected` deliveries arrived, or none arrived for 10 s (bounded at 180 s), and
   * sums the run up: deliveries, per second from `started` to the last one, latencies.
   */
  async settle(
    path: string,
    expected: number,
    started: number,
  ): Promise<{ delivered: number; deliveredPerSec: number; latencyMs: LatencySummary }> {
    await waitFor(
      () => this.delivered >= expected || now() - Math.max(this.lastAt, started) > 10_000,
      { timeoutMs: 180_000, intervalMs: 20, message: `${path} deliveries` },
    );
    return {
      delivered: this.delivered,
      deliveredPerSec: round(this.delivered / ((this.lastAt - started) / 1000), 0),
      latencyMs: summarize(this.latencies),
    };
  }
}
