import { randomBytes } from "node:crypto";
import { io, type Socket } from "socket.io-client";
import { expect } from "vitest";
import WebSocket from "ws";
import type { GatewayProcess } from "../support/gateway-process.js";
import { nextEvent, waitFor } from "../support/wait.js";

/**
 * Tools of the security tests: raw Engine.IO over HTTP long-polling and WebSocket (what an
 * attacker sends, byte for byte), /metrics readings, and a well-behaved client that must keep
 * being served whatever the others do.
 */

/** Engine.IO v4 separates packets of one polling payload with this byte. */
export const RECORD_SEPARATOR = "\x1e";

export interface RawPolling {
  sid: string;
  post(body: string, headers?: Record<string, string>): Promise<Response>;
  get(): Promise<Response>;
}

/** Opens an Engine.IO session over long-polling by hand. */
export async function rawPolling(
  url: string,
  headers: Record<string, string> = {},
): Promise<RawPolling> {
  const base = `${url}/socket.io/?EIO=4&transport=polling`;
  const res = await fetch(base, { headers, signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  expect(res.status, text).toBe(200);
  const { sid } = JSON.parse(text.slice(1)) as { sid: string };
  const at = `${base}&sid=${encodeURIComponent(sid)}`;
  return {
    sid,
    post: (body, extra = {}) =>
      fetch(at, {
        method: "POST",
        headers: { "content-type": "text/plain;charset=UTF-8", ...headers, ...extra },
        body,
        signal: AbortSignal.timeout(10_000),
      }),
    get: () => fetch(at, { headers, signal: AbortSignal.timeout(40_000) }),
  };
}

export interface RawWebSocket {
  readonly socket: WebSocket;
  /** Text frames received so far. */
  readonly received: string[];
  send(frame: string | Buffer): void;
  /** Resolves with the close code once the server closed the connection. */
  readonly closed: Promise<number>;
}

/** An Engine.IO WebSocket opened by hand (no Socket.IO client in between). */
export async function rawWebSocket(
  url: string,
  headers: Record<string, string> = {},
  localAddress?: string,
): Promise<RawWebSocket> {
  const socket = new WebSocket(
    `${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`,
    { headers, ...(localAddress ? { localAddress } : {}) },
  );
  const received: string[] = [];
  socket.on("message", (data, isBinary) => {
    if (!isBinary) received.push(data.toString());
  });
  const closed = new Promise<number>((resolve) => {
    socket.once("close", (code) => resolve(code));
    socket.once("error", () => resolve(-1));
  });
  await Promise.race([
    nextEvent(socket, "open"),
    closed.then((code) => {
      throw new Error(`WebSocket refused (close ${code})`);
    }),
  ]);
  await waitFor(() => received.some((frame) => frame.startsWith("0")), {
    message: "the Engine.IO open packet",
  });
  return { socket, received, send: (frame) => socket.send(frame), closed };
}

/** The text of /metrics. */
export async function scrape(gateway: GatewayProcess, token?: string): Promise<string> {
  const res = await fetch(`${gateway.url}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  expect(res.status).toBe(200);
  return res.text();
}

/** One sample of `/metrics` (sum over label sets matching `labels`). */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

export async function rssBytes(gateway: GatewayProcess): Promise<number> {
  return metric(await scrape(gateway), "switchboard_process_resident_memory_bytes");
}

/**
 * A well-behaved client in its own room on `gateway`; `stillServed()` proves it is connected and
 * receives what another client publishes to that room.
 */
export async function startBystander(
  gateway: GatewayProcess,
  auth?: Record<string, unknown>,
  extraHeaders?: Record<string, string>,
) {
  const room = `bystander:${randomBytes(4).toString("hex")}`;
  const connect = async () => {
    const socket = io(gateway.url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      ...(auth ? { auth } : {}),
      ...(extraHeaders ? { extraHeaders } : {}),
    });
    await nextEvent(socket, "connect");
    return socket;
  };
  const listener = await connect();
  const speaker = await connect();
  expect(await listener.timeout(10_000).emitWithAck("join", room)).toEqual({ ok: true });
  const got: unknown[] = [];
  listener.on("message", (data: unknown) => got.push(data));
  return {
    sockets: [listener, speaker] as Socket[],
    async stillServed() {
      expect(listener.connected && speaker.connected).toBe(true);
      const marker = randomBytes(4).toString("hex");
      const ack = await speaker
        .timeout(10_000)
        .emitWithAck("publish", { room, event: "message", data: marker });
      expect(ack).toEqual({ ok: true });
      await waitFor(() => got.includes(marker), { message: "the bystander's message" });
    },
    close() {
      listener.disconnect();
      speaker.disconnect();
    },
  };
}
