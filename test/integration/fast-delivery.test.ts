import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { Socket } from "socket.io-client";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import WebSocket from "ws";
import { closeAllClients, connectClient, request } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { startInProcessGateway } from "../support/in-process-gateway.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { waitFor } from "../support/wait.js";

/**
 * The fast delivery path (services/gateway/fast-delivery.ts) on real gateway processes: clients
 * on it (WebSocket) and beside it (polling), JavaScript and Python, get the same Engine.IO
 * packets in the same order; the WebSocket bytes are the frames stock Socket.IO's `ws` builds;
 * and the gateway's counter shows the fast path was taken (so that a silently disabled fast
 * path fails here).
 */

// Debian's python3-socketio, for the system interpreter (CI installs it).
const PYTHON = "/usr/bin/python3";
const PY_CLIENT = fileURLToPath(new URL("./python/delivery_client.py", import.meta.url));
const { Sender } = createRequire(import.meta.url)("ws") as {
  Sender: { frame(data: Buffer, options: object): Buffer[] };
};

afterEach(() => closeAllClients());

/** Engine.IO message packets a Socket.IO client receives, text or hex, in arrival order. */
function rawPackets(socket: Socket): string[] {
  const list: string[] = [];
  socket.io.engine.on("packet", ({ type, data }) => {
    if (type !== "message") return;
    list.push(
      typeof data === "string" ? data : `hex:${Buffer.from(data as ArrayBuffer).toString("hex")}`,
    );
  });
  return list;
}

/** Socket.IO event packets only (not the client's own connect and acks). */
const events = (list: string[]) => list.filter((p) => /^[25]|^hex:/.test(p));

interface PythonClient {
  packets: string[];
  child: ChildProcess;
}

async function pythonClient(url: string, room: string, transport: string): Promise<PythonClient> {
  const child = spawn(PYTHON, [PY_CLIENT, url, room, transport], {
    env: { PATH: process.env.PATH ?? "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  onTestFinished(() => {
    if (child.exitCode === null) child.kill("SIGTERM");
  });
  let stderr = "";
  child.stderr?.on("data", (d) => {
    stderr += String(d);
  });
  const packets: string[] = [];
  let ready = false;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const msg = JSON.parse(line) as { ready?: boolean; text?: string; hex?: string };
    if (msg.ready) ready = true;
    else if (msg.text !== undefined) packets.push(msg.text);
    else if (msg.hex !== undefined) packets.push(`hex:${msg.hex}`);
  });
  await waitFor(() => ready || child.exitCode !== null, {
    timeoutMs: 20_000,
    message: `python-socketio ${transport} client to join`,
  });
  if (!ready) throw new Error(`python client exited: ${stderr}`);
  return { packets, child };
}

/**
 * A bare WebSocket Engine.IO client that keeps every byte the server sends, to check frames
 * byte for byte. Joins `room` by hand (EIO 4: "40" connect, `420["join",room]`).
 */
async function rawWebSocket(url: string, room: string): Promise<{ frames: () => Frame[] }> {
  const chunks: Buffer[] = [];
  const ws = new WebSocket(`${url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  onTestFinished(() => ws.terminate());
  // Beside ws's own reader (a listener added earlier would take the bytes from it).
  ws.on("open", () => {
    const socket = (ws as unknown as { _socket: NodeJS.ReadableStream })._socket;
    socket.prependListener("data", (chunk) => chunks.push(chunk as Buffer));
  });
  let joined = false;
  ws.on("message", (data) => {
    const text = String(data);
    if (text.startsWith("0{")) ws.send("40");
    else if (text.startsWith("40{")) ws.send(`420${JSON.stringify(["join", room])}`);
    else if (text.startsWith("430")) joined = true;
  });
  await waitFor(() => joined, { message: "the raw WebSocket client to join" });
  return { frames: () => parseFrames(Buffer.concat(chunks)) };
}

interface Frame {
  raw: Buffer;
  opcode: number;
  payload: Buffer;
}

/** Server frames (unmasked), whole. */
function parseFrames(bytes: Buffer): Frame[] {
  const frames: Frame[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    let length = (bytes[at + 1] as number) & 0x7f;
    let header = 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at + 2);
      header = 4;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at + 2));
      header = 10;
    }
    if (at + header + length > bytes.length) break;
    frames.push({
      raw: bytes.subarray(at, at + header + length),
      opcode: (bytes[at] as number) & 0x0f,
      payload: bytes.subarray(at + header, at + header + length),
    });
    at += header + length;
  }
  return frames;
}

/** The frame stock Socket.IO's `ws` sends for an Engine.IO payload. */
const stockFrame = (opcode: number, payload: Buffer) =>
  Buffer.concat(
    Sender.frame(payload, { fin: true, opcode, mask: false, rsv1: false, readOnly: false }),
  );

async function packetsWritten(
  gateway: Pick<GatewayProcess, "url">,
): Promise<{ fast: number; stock: number }> {
  const body = await (await fetch(`${gateway.url}/metrics`)).text();
  const read = (path: string) =>
    Number(
      new RegExp(
        `^switchboard_gateway_packets_written_total\\{path="${path}"[^}]*\\} (\\d+)`,
        "m",
      ).exec(body)?.[1] ?? Number.NaN,
    );
  return { fast: read("fast"), stock: read("stock") };
}

describe.each([
  { backplane: "memory", gateways: 1 },
  { backplane: "redis", gateways: 2 },
])(
  "fast and stock delivery paths on $backplane ($gateways gateway processes)",
  ({ backplane, gateways: count }) => {
    it("WebSocket and polling clients, JavaScript and Python, get the same packets in order, as stock frames", async () => {
      const env: Record<string, string> = { BACKPLANE: backplane };
      if (backplane === "redis") {
        const redis = await startPrivateRedis();
        onTestFinished(() => redis.stop());
        env.REDIS_URL = redis.url;
      }
      const gateways: GatewayProcess[] = [];
      for (let i = 0; i < count; i++) {
        const gateway = await startGateway({
          mode: "harness",
          env: { ...env, GATEWAY_ID: `fast-${backplane}-${i}` },
        });
        onTestFinished(() => gateway.stop());
        gateways.push(gateway);
      }
      const sender = gateways[0] as GatewayProcess;
      const receiver = gateways.at(-1) as GatewayProcess;
      const room = `fast:${backplane}:${Date.now()}`;

      const jsWs = await connectClient(receiver.url);
      const jsPolling = await connectClient(receiver.url, { transports: ["polling"] });
      const js = [jsWs, jsPolling].map(rawPackets);
      for (const c of [jsWs, jsPolling])
        expect(await request(c, "join", room)).toEqual({ ok: true });
      const py = [
        await pythonClient(receiver.url, room, "websocket"),
        await pythonClient(receiver.url, room, "polling"),
      ];
      const raw = await rawWebSocket(receiver.url, room);
      const publisher = await connectClient(sender.url);
      const before = await packetsWritten(receiver);

      // Server emits (text of every header length, one with binary), then client publishes with acks.
      const sizes = [0, 10, 60, 200, 30_000];
      for (let k = 0; k < 8; k++) {
        const args =
          k === 4 ? [k, Buffer.from([0, 1, 254, 255])] : [k, "é".repeat(sizes[k % 5] as number)];
        await sender.control("emit", { to: [room], event: "seq", args });
      }
      for (let k = 0; k < 4; k++) {
        const data = { k, text: "x€".repeat(k * 50) };
        expect(await request(publisher, "publish", { room, event: "seq", data })).toEqual({
          ok: true,
        });
      }
      // 8 emits (one with an attachment) and 4 publishes.
      const total = 13;
      const lists = () => [...js, ...py.map((p) => p.packets)].map(events);
      await waitFor(() => lists().every((l) => l.length >= total), {
        timeoutMs: 20_000,
        message: "every packet at every client",
      });
      const [reference, ...others] = lists();
      expect(reference).toHaveLength(total);
      expect(reference?.[0]).toBe('2["seq",0,""]');
      expect(reference?.slice(4, 6)).toEqual([
        '51-["seq",4,{"_placeholder":true,"num":0}]',
        "hex:0001feff",
      ]);
      for (const list of others) expect(list).toEqual(reference);

      // The bare WebSocket client's bytes: each frame exactly as stock builds it, same packets.
      await waitFor(() => raw.frames().length >= 3 + total, { message: "the raw client's frames" });
      const frames = raw.frames();
      for (const frame of frames) {
        expect(frame.raw.equals(stockFrame(frame.opcode, frame.payload))).toBe(true);
      }
      const rawEvents = events(
        frames.map((f) =>
          f.opcode === 1 ? String(f.payload).slice(1) : `hex:${f.payload.toString("hex")}`,
        ),
      );
      expect(rawEvents).toEqual(reference);

      // Both paths ran. The four emits before the binary packet went the fast way to each of the
      // 3 WebSocket receivers (each alone on an idle socket); after it, text packets that arrive
      // while its stock write is still in flight wait behind it, as in stock (how many depends on
      // how the backplane's reads fall on a busy machine). Polling went the stock way: 12 packets
      // to each of the 2 polling receivers.
      const after = await packetsWritten(receiver);
      expect(after.fast - before.fast).toBeGreaterThanOrEqual(3 * 4);
      expect(after.stock - before.stock).toBeGreaterThanOrEqual(2 * 12);
      expect(after.fast - before.fast + (after.stock - before.stock)).toBeGreaterThanOrEqual(
        5 * 12,
      );
    }, 60_000);
  },
);

describe("a slow client on the fast path", () => {
  it("keeps stock backpressure: once its socket holds unsent bytes, packets queue in engine.io and all arrive in order", async () => {
    // Unbounded, as stock: this is about the order of what waits (slow-consumer.test.ts has the bound).
    const { gateway, url, close } = await startInProcessGateway({ MAX_CLIENT_BUFFER_BYTES: "0" });
    onTestFinished(close);
    const slow = await connectClient(url);
    const room = `slow:${Date.now()}`;
    expect(await request(slow, "join", room)).toEqual({ ok: true });
    const got: number[] = [];
    slow.on("big", (k: number) => got.push(k));
    const server = gateway.io.of("/").sockets.get(slow.id as string);
    const conn = server?.conn as unknown as {
      writeBuffer: unknown[];
      transport: { writable: boolean };
    };
    // The client stops reading: the kernel buffers fill, then the gateway's socket holds bytes.
    const clientSocket = (
      slow.io.engine.transport as unknown as { ws: { _socket: NodeJS.ReadableStream } }
    ).ws._socket;
    clientSocket.pause();
    const before = await packetsWritten({ url });
    const big = "x".repeat(256 * 1024);
    let queued = false;
    let emitted = 0;
    for (; emitted < 200 && !queued; emitted++) {
      gateway.io.to(room).emit("big", emitted, big);
      queued = conn.writeBuffer.length > 0 || !conn.transport.writable;
    }
    // A few more behind the busy transport.
    for (const end = emitted + 5; emitted < end; emitted++)
      gateway.io.to(room).emit("big", emitted, big);
    // As stock: the transport is busy until the bytes are out, later packets wait in its buffer.
    expect(queued).toBe(true);
    const after = await packetsWritten({ url });
    expect(after.stock).toBeGreaterThan(before.stock);
    clientSocket.resume();
    await waitFor(() => got.length >= emitted, {
      timeoutMs: 20_000,
      message: "every packet after the client reads again",
    });
    expect(got).toEqual(Array.from({ length: emitted }, (_, k) => k));
  }, 60_000);
});
