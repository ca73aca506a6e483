/**
 * A load-generator process (forked by load.ts, one per generator core share): holds a slice of
 * the receiving clients and publishers, publishes open-loop on a fixed schedule, and records
 * end-to-end latency in an HDR histogram. Messages: see the `Command` type.
 */
import * as hdr from "hdr-histogram-js";
import { io, type Socket } from "socket.io-client";
import WebSocket from "ws";

export type ClientKind = "sio" | "ws";

export interface ConnectCommand {
  cmd: "connect";
  kind: ClientKind;
  clients: Array<{ url: string; room: string | null }>;
  publishers: Array<{ id: number; url: string }>;
  publishersTotal: number;
  /** The server URL of every publisher, by id (all workers'): same- or cross-server deliveries. */
  publisherUrls: string[];
  concurrency: number;
}
export interface StepCommand {
  cmd: "step";
  k: number;
  t0: number;
  warmupMs: number;
  durationMs: number;
  drainMs: number;
  /** Publishes per second from this worker. */
  rate: number;
  /** Offset of this worker in the round-robin over rooms. */
  w: number;
  workers: number;
  rooms: string[];
  members: number[];
  payloadBytes: number;
}
type Command = ConnectCommand | StepCommand | { cmd: "close" };

const now = () => performance.timeOrigin + performance.now();
const send = (m: object) => process.send?.(m);
const histogram = () =>
  hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 600_000_000,
    numberOfSignificantValueDigits: 3,
  });

interface Delivery {
  p: number;
  s: number;
  k: number;
  m: 0 | 1;
  t: number;
}

interface Conn {
  publish(room: string, data: Delivery & { x: string }, onAck: (ok: boolean) => void): void;
  close(): void;
}

let kind: ClientKind = "sio";
let publishersTotal = 1;
/** Per receiver: true where a publisher (by id) is on the receiver's server. */
const sameServer: boolean[][] = [];
let disconnects = 0;
const conns: Conn[] = [];
const publishers: Array<{ id: number; conn: Conn; seq: number }> = [];

interface StepState {
  k: number;
  tMeasure: number;
  tEnd: number;
  hist: ReturnType<typeof histogram>;
  /** The same deliveries split by whether publisher and receiver share a server. */
  histSame: ReturnType<typeof histogram>;
  histCross: ReturnType<typeof histogram>;
  seen: Array<Uint8Array | undefined>;
  delivered: number;
  inWindow: number;
  dupes: number;
  lastReceipt: number;
}
let step: StepState | undefined;

function onDelivery(receiver: number, d: Delivery) {
  const s = step;
  if (s === undefined || d === null || typeof d !== "object" || d.k !== s.k) return;
  const t = now();
  if (t >= s.tMeasure && t < s.tEnd) s.inWindow++;
  if (d.m !== 1) return;
  const key = receiver * publishersTotal + d.p;
  let bits = s.seen[key];
  const byte = d.s >> 3;
  if (bits === undefined || bits.length <= byte) {
    const grown = new Uint8Array(Math.max(1024, byte * 2));
    if (bits !== undefined) grown.set(bits);
    s.seen[key] = bits = grown;
  }
  const bit = 1 << (d.s & 7);
  if (bits[byte]! & bit) {
    s.dupes++;
    return;
  }
  bits[byte]! |= bit;
  s.delivered++;
  s.lastReceipt = t;
  const us = Math.max(1, Math.round((t - d.t) * 1000));
  s.hist.recordValue(us);
  (sameServer[receiver]?.[d.p] ? s.histSame : s.histCross).recordValue(us);
}

function connect(url: string, receiver: number | null, room: string | null): Promise<Conn> {
  return new Promise((resolve, reject) => {
    if (kind === "ws") {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { perMessageDeflate: false });
      const acks = new Map<number, (ok: boolean) => void>();
      let nextId = 1;
      const request = (msg: Record<string, unknown>, cb: (ok: boolean) => void) => {
        const id = nextId++;
        acks.set(id, cb);
        ws.send(JSON.stringify({ ...msg, id }));
      };
      ws.on("message", (raw) => {
        const msg = JSON.parse(String(raw)) as unknown;
        if (Array.isArray(msg)) {
          if (receiver !== null) onDelivery(receiver, msg[1] as Delivery);
          return;
        }
        const ack = msg as { ack: number; ok?: boolean };
        const cb = acks.get(ack.ack);
        acks.delete(ack.ack);
        cb?.(ack.ok === true);
      });
      ws.once("error", reject);
      ws.once("close", () => disconnects++);
      ws.once("open", () => {
        const conn: Conn = {
          publish: (r, data, onAck) =>
            request({ op: "publish", room: r, event: "msg", data }, onAck),
          close: () => ws.terminate(),
        };
        if (room === null) return resolve(conn);
        request({ op: "join", room }, (ok) =>
          ok ? resolve(conn) : reject(new Error(`join ${room} refused`)),
        );
      });
    } else {
      const socket: Socket = io(url, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
        timeout: 60_000,
      });
      socket.once("connect_error", reject);
      socket.on("disconnect", () => disconnects++);
      if (receiver !== null) socket.on("msg", (d: Delivery) => onDelivery(receiver, d));
      socket.once("connect", () => {
        const conn: Conn = {
          publish: (r, data, onAck) =>
            socket.emit("publish", { room: r, event: "msg", data }, (reply: { ok?: boolean }) =>
              onAck(reply?.ok === true),
            ),
          close: () => socket.disconnect(),
        };
        if (room === null) return resolve(conn);
        socket.emit("join", room, (reply: { ok?: boolean }) =>
          reply?.ok === true ? resolve(conn) : reject(new Error(`join ${room} refused`)),
        );
      });
    }
  });
}

async function connectAll(c: ConnectCommand) {
  kind = c.kind;
  publishersTotal = c.publishersTotal;
  const t0 = now();
  let ok = 0;
  let failed = 0;
  const errors = new Set<string>();
  let next = 0;
  const runOne = async () => {
    while (next < c.clients.length) {
      const index = next++;
      const client = c.clients[index]!;
      sameServer[index] = c.publisherUrls.map((url) => url === client.url);
      try {
        conns.push(await connect(client.url, client.room === null ? null : index, client.room));
        ok++;
      } catch (err) {
        failed++;
        errors.add(String((err as Error).message ?? err));
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(c.concurrency, c.clients.length) }, runOne));
  const wallMs = now() - t0;
  for (const p of c.publishers) {
    try {
      publishers.push({ id: p.id, conn: await connect(p.url, null, null), seq: 0 });
    } catch (err) {
      failed++;
      errors.add(String((err as Error).message ?? err));
    }
  }
  send({ cmd: "connected", ok, failed, errors: [...errors].slice(0, 3), wallMs });
}

function runStep(m: StepCommand) {
  const tMeasure = m.t0 + m.warmupMs;
  const tEnd = tMeasure + m.durationMs;
  const s: StepState = {
    k: m.k,
    tMeasure,
    tEnd,
    hist: histogram(),
    histSame: histogram(),
    histCross: histogram(),
    seen: [],
    delivered: 0,
    inWindow: 0,
    dupes: 0,
    lastReceipt: 0,
  };
  step = s;
  const lag = histogram();
  let sentMeasured = 0;
  let expected = 0;
  let acksOk = 0;
  let acksFailed = 0;
  let sent = 0;
  const disconnectsBefore = disconnects;
  const onAck = (ok: boolean) => (ok ? acksOk++ : acksFailed++);
  const skeleton = JSON.stringify({ p: 0, s: 0, k: m.k, m: 1, t: now(), x: "" });
  const pad = "x".repeat(Math.max(0, m.payloadBytes - skeleton.length));
  for (const p of publishers) p.seq = 0;
  const interval = 1000 / m.rate;
  let i = 0;
  const tick = () => {
    const t = now();
    for (let burst = 0; burst < 2000; burst++) {
      const due = m.t0 + i * interval;
      if (due >= tEnd || publishers.length === 0) return drain();
      if (due > t) break;
      const roomIndex = (i * m.workers + m.w) % m.rooms.length;
      const pub = publishers[i % publishers.length]!;
      const measured = due >= tMeasure ? 1 : 0;
      pub.conn.publish(
        m.rooms[roomIndex]!,
        { p: pub.id, s: pub.seq++, k: m.k, m: measured, t: now(), x: pad },
        onAck,
      );
      sent++;
      if (measured) {
        sentMeasured++;
        expected += m.members[roomIndex]!;
      }
      lag.recordValue(Math.max(1, Math.round((t - due) * 1000)));
      i++;
    }
    setTimeout(tick, Math.max(0, Math.min(m.t0 + i * interval - now(), 5)));
  };
  const drain = () => {
    const poll = () => {
      const t = now();
      const quiet = t - Math.max(s.lastReceipt, tEnd) >= 500;
      if (t >= tEnd + m.drainMs || quiet) return report();
      setTimeout(poll, 50);
    };
    setTimeout(poll, Math.max(0, tEnd - now()) + 50);
  };
  const report = () => {
    step = undefined;
    send({
      cmd: "stepResult",
      sent,
      sentMeasured,
      expected,
      delivered: s.delivered,
      inWindow: s.inWindow,
      dupes: s.dupes,
      acksOk,
      acksFailed,
      disconnects: disconnects - disconnectsBefore,
      hist: hdr.encodeIntoCompressedBase64(s.hist),
      histSame: hdr.encodeIntoCompressedBase64(s.histSame),
      histCross: hdr.encodeIntoCompressedBase64(s.histCross),
      lag: hdr.encodeIntoCompressedBase64(lag),
    });
  };
  setTimeout(tick, Math.max(0, m.t0 - now()));
}

process.on("message", (m: Command) => {
  if (m.cmd === "connect") {
    connectAll(m).catch((err: unknown) => send({ cmd: "error", error: String(err) }));
  } else if (m.cmd === "step") {
    runStep(m);
  } else if (m.cmd === "close") {
    for (const c of [...conns, ...publishers.map((p) => p.conn)]) c.close();
    setTimeout(() => process.exit(0), 100);
  }
});
process.on("disconnect", () => process.exit(0));
send({ cmd: "hello" });
