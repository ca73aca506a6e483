import type { Socket } from "socket.io-client";
import { connectClient, request } from "../test/support/clients.js";
import { waitFor } from "../test/support/wait.js";
import { type LatencySummary, now, round, summarize } from "./stats.js";

export interface RoomLoadOptions {
  /** Gateway base URLs; clients are spread over them. */
  urls: string[];
  /** Member clients per gateway. */
  membersPerGateway: number;
  /** Room of member `i` on gateway `g`. */
  roomOf: (gateway: number, member: number) => string;
  /** Rooms the publishers cycle through. */
  rooms: string[];
  /** Publisher clients per gateway (members of no room). */
  publishersPerGateway: number;
  /** Offered load: client `publish` requests per second, all publishers together. */
  ratePerSec: number;
  durationMs: number;
}

export interface RoomLoadResult {
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  rejected: number;
  deliveredPerSec: number;
  latencyMs: LatencySummary;
}

/**
 * Members join rooms, publishers publish to the rooms in turn at a fixed rate through the client
 * protocol; every delivery's latency is measured from the publish call to the member's handler.
 */
export async function roomLoad(options: RoomLoadOptions): Promise<RoomLoadResult> {
  const sockets: Socket[] = [];
  try {
    const membersOf = new Map<string, number>();
    const latencies: number[] = [];
    let delivered = 0;
    let duplicates = 0;
    let lastDeliveryAt = 0;
    for (const [g, url] of options.urls.entries()) {
      for (let i = 0; i < options.membersPerGateway; i++) {
        const room = options.roomOf(g, i);
        const socket = await connectClient(url);
        sockets.push(socket);
        const seen = new Set<number>();
        socket.on("bench", (data: { seq: number; t: number }) => {
          lastDeliveryAt = now();
          latencies.push(lastDeliveryAt - data.t);
          delivered += 1;
          if (seen.has(data.seq)) duplicates += 1;
          seen.add(data.seq);
        });
        await request(socket, "join", room);
        membersOf.set(room, (membersOf.get(room) ?? 0) + 1);
      }
    }
    const publishers: Socket[] = [];
    for (const url of options.urls) {
      for (let i = 0; i < options.publishersPerGateway; i++)
        publishers.push(await connectClient(url));
    }
    sockets.push(...publishers);

    let sent = 0;
    let expected = 0;
    let rejected = 0;
    const started = now();
    const total = Math.round((options.ratePerSec * options.durationMs) / 1000);
    await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((now() - started) / 1000) * options.ratePerSec));
        while (sent < due) {
          const room = options.rooms[sent % options.rooms.length]!;
          const publisher = publishers[sent % publishers.length]!;
          const seq = sent++;
          expected += membersOf.get(room) ?? 0;
          publisher.emit(
            "publish",
            { room, event: "bench", data: { seq, t: now() } },
            (reply: { ok?: true }) => {
              if (!reply.ok) rejected += 1;
            },
          );
        }
        if (sent >= total) {
          clearInterval(tick);
          resolve();
        }
      }, 5);
    });
    const sendEnded = now();
    // Wait for the tail; what has not arrived after 10 s of quiet counts as lost.
    await waitFor(
      () => delivered >= expected || now() - Math.max(lastDeliveryAt, sendEnded) > 10_000,
      {
        timeoutMs: 120_000,
        intervalMs: 50,
        message: "deliveries to settle",
      },
    );
    const elapsedSec = (Math.max(sendEnded, lastDeliveryAt) - started) / 1000;
    return {
      sent,
      expected,
      delivered,
      lost: Math.max(0, expected - (delivered - duplicates)),
      duplicates,
      rejected,
      deliveredPerSec: round(delivered / elapsedSec, 0),
      latencyMs: summarize(latencies),
    };
  } finally {
    for (const socket of sockets) socket.disconnect();
  }
}
