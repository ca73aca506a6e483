import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Registry } from "prom-client";
import type { Server } from "socket.io";
import type { Logger } from "./logger.js";
import { type BufferedConn, dropIfSlow } from "./slow-consumers.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Counter } = createRequire(import.meta.url)("prom-client") as typeof import("prom-client");

/**
 * The fast path of a delivery (issue 12, P4): a text packet for a client on an idle WebSocket is
 * written as ONE pre-framed Buffer, straight to the socket, instead of through engine.io's write
 * buffer (a packet object, 'packetCreate'/'flush'/'drain' emits, a sent-callback, then ws's
 * cork + two writes + uncork and a write callback per recipient). A broadcast frames its packet
 * once and every eligible recipient gets the same Buffer.
 *
 * The seam is `socket.client.writeToEngine(encodedPackets, opts)`: every local delivery passes
 * there, whatever the backplane (the in-memory adapter's `broadcast`/`broadcastWithAck`, which
 * every cluster and Redis adapter ends in for its local members, and `socket.emit` / acks via
 * `client._packet`). It is patched once per process on socket.io's `Client` prototype (nothing
 * per connection); it acts for the servers `createFastDelivery` was called for, and everything
 * that is not eligible goes to Socket.IO's own `writeToEngine`, unchanged.
 *
 * The bytes are those stock sends: an engine.io message packet ("4" + the socket.io packet
 * string) in one unmasked, uncompressed, final text frame, as `ws`'s `Sender.frame` builds it.
 * A packet goes fast only when nothing can reorder or lose it and no stock behaviour is skipped:
 * see `eligible`. Otherwise it takes the stock path, which also keeps stock's backpressure (a
 * socket with unsent bytes goes stock; engine.io then marks its transport busy until they are
 * flushed, and queues in its write buffer, as it always did).
 */
export interface FastDelivery {
  /** False when the internals it relies on are not as expected (logged once at start). */
  readonly enabled: boolean;
  /** Packets written per path since start. */
  stats(): { fast: number; stock: number };
}

/** engine.io's Socket, as far as the fast path reads it (engine.io 6, build/socket.js). */
interface EngineConn {
  readyState: string;
  upgrading: boolean;
  writeBuffer: unknown[];
  transport: unknown;
  server: { listenerCount(event: string): number };
  listenerCount(event: string): number;
}

/** engine.io's WebSocket transport over `ws` (build/transports/websocket.js). */
interface WsTransport {
  writable: boolean;
  socket: WsSocket;
}

/** The `ws` WebSocket under it: public `readyState`/`bufferedAmount`, and the sender that
 * engine.io itself writes pre-encoded frames to (`_sender.sendFrame`, ws 8). */
interface WsSocket {
  readyState: number;
  bufferedAmount: number;
  _sender: { sendFrame(list: Buffer[], cb?: (err?: Error) => void): void };
}

type WriteToEngine = (encodedPackets: unknown, opts: PacketOptions) => void;

/** What Socket.IO passes with a packet (`packetOpts` of a broadcast, `flags` of an emit). */
interface PacketOptions {
  volatile?: boolean;
  preEncoded?: boolean;
  wsPreEncodedFrame?: unknown;
  [FRAME]?: Buffer;
  [SOURCE]?: string;
  [DEFERRED]?: true;
}

/** The frame built for a packet, cached on its options object: a broadcast's is shared by all
 * its recipients, so the packet is framed once. */
const FRAME = Symbol("switchboard.frame");
const SOURCE = Symbol("switchboard.frameSource");
/** Set by `deferredEncode`: the adapter left the broadcast's WebSocket frame to the write. */
const DEFERRED = Symbol("switchboard.frameDeferred");

const WS_OPEN = 1;

/**
 * The WebSocket frame stock sends for the socket.io packet string `packet`: FIN + text opcode,
 * no mask, no RSV1 (no compression), the engine.io "message" type "4" before the packet. Header
 * lengths as in `ws`'s `Sender.frame`: 2 bytes up to 125, 4 up to 65,535, 10 beyond.
 */
export function frameTextPacket(packet: string): Buffer {
  const length = Buffer.byteLength(packet) + 1;
  const header = length <= 125 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81;
  if (header === 2) {
    frame[1] = length;
  } else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame[2] = 0;
    frame[3] = 0;
    frame.writeUIntBE(length, 4, 6);
  }
  frame[header] = 0x34; // "4": engine.io's message packet
  frame.write(packet, header + 1, "utf8");
  return frame;
}

/**
 * Whether a packet for this connection may take the fast path. Each rule keeps a stock
 * guarantee:
 *  - open, not upgrading, transport is the `ws` WebSocket one (not polling, not WebTransport):
 *    the only transport whose frames we know, and no transport switch in flight;
 *  - engine.io's write buffer empty and its transport writable (no stock write in flight):
 *    nothing queued earlier can be overtaken, so order holds;
 *  - the WebSocket open with nothing buffered (`bufferedAmount` 0: neither the net.Socket nor
 *    ws's sender holds bytes): a slow client takes the stock path, whose write callback keeps
 *    the transport unwritable and engine.io queueing until the bytes are out, as without us;
 *  - nobody listens to engine.io's 'packetCreate'/'flush'/'drain' (the socket's or the
 *    server's): those events would not fire on the fast path.
 */
export function eligible(conn: EngineConn, wsTransport: unknown): boolean {
  if (conn.readyState !== "open" || conn.upgrading || conn.writeBuffer.length !== 0) return false;
  const transport = conn.transport as WsTransport;
  if (transport === null || typeof transport !== "object") return false;
  if (transport.constructor !== wsTransport || !transport.writable) return false;
  const ws = transport.socket;
  if (ws.readyState !== WS_OPEN || ws.bufferedAmount !== 0) return false;
  return (
    conn.listenerCount("packetCreate") === 0 &&
    conn.listenerCount("flush") === 0 &&
    conn.listenerCount("drain") === 0 &&
    conn.server.listenerCount("flush") === 0 &&
    conn.server.listenerCount("drain") === 0
  );
}

/** The socket.io packet string of a single text packet, or undefined (binary, several parts). */
function singleText(encodedPackets: unknown): string | undefined {
  if (typeof encodedPackets === "string") return encodedPackets;
  if (Array.isArray(encodedPackets) && encodedPackets.length === 1) {
    const only: unknown = encodedPackets[0];
    if (typeof only === "string") return only;
  }
  return undefined;
}

/** The frame of `text`, built once per options object (a broadcast's are shared). */
function frameFor(text: string, opts: PacketOptions): Buffer {
  const cached = opts[FRAME];
  if (cached !== undefined && opts[SOURCE] === text) return cached;
  const frame = frameTextPacket(text);
  opts[FRAME] = frame;
  opts[SOURCE] = text;
  return frame;
}

/**
 * What the fast path relies on, checked once at start: our frames equal `ws`'s, engine.io's
 * message packet is "4" + data, and the packages are the majors whose internals we read.
 * Returns the reason it does not hold, or undefined.
 */
export function checkInternals(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const socketIoPath = require.resolve("socket.io");
    const fromSocketIo = createRequire(socketIoPath);
    const enginePath = fromSocketIo.resolve("engine.io");
    const fromEngine = createRequire(enginePath);
    const ws = fromEngine("ws") as {
      Sender?: { frame?(data: Buffer, options: object): Buffer[]; prototype?: object };
    };
    const sender = ws.Sender;
    if (typeof sender?.frame !== "function") return "ws Sender.frame missing";
    const proto = sender.prototype as { sendFrame?: unknown } | undefined;
    if (typeof proto?.sendFrame !== "function") return "ws Sender#sendFrame missing";
    const parser = fromEngine("engine.io-parser") as {
      encodePacket?(packet: object, binary: boolean, cb: (encoded: unknown) => void): void;
    };
    let encoded: unknown;
    parser.encodePacket?.({ type: "message", data: "x" }, true, (e) => {
      encoded = e;
    });
    if (encoded !== "4x") return "engine.io message packet is not '4' + data";
    for (const text of ["", '2["a"]', "é".repeat(70), "x".repeat(200), "y".repeat(70_000)]) {
      const theirs = Buffer.concat(
        sender.frame(Buffer.from(`4${text}`), {
          readOnly: false,
          mask: false,
          rsv1: false,
          opcode: 1,
          fin: true,
        }),
      );
      if (!theirs.equals(frameTextPacket(text))) return "frame differs from ws's";
    }
    const versions = { "socket.io": socketIoPath, "engine.io": enginePath } as const;
    for (const [name, path] of Object.entries(versions)) {
      const major = packageMajor(path, name);
      if (major !== (name === "socket.io" ? 4 : 6)) return `${name} major ${major} not supported`;
    }
    return undefined;
  } catch (err) {
    return `internals check failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function packageMajor(resolvedMain: string, name: string): number | undefined {
  const at = resolvedMain.lastIndexOf(`/node_modules/${name}/`);
  if (at < 0) return undefined;
  const require = createRequire(resolvedMain);
  const pkg = require(`${resolvedMain.slice(0, at)}/node_modules/${name}/package.json`) as {
    version?: string;
  };
  return Number(pkg.version?.split(".")[0]);
}

/** A gateway's own state, on its Socket.IO server: a server without it writes the stock way. */
interface GatewayState {
  fast: number;
  stock: number;
  logger: Logger;
  /** Why the fast path is off for this server (its packets go stock; the buffer bound holds). */
  fastOff: string | undefined;
  /** MAX_CLIENT_BUFFER_BYTES (0: no bound) and what to do when a client passes it. */
  maxBufferedBytes: number;
  onSlowConsumer: (pending: number, connection: string) => void;
}

const STATE = Symbol("switchboard.fastDelivery");

interface EngineClient {
  conn: EngineConn;
  server: { [STATE]?: GatewayState };
}

/** Socket.IO's own `Client#writeToEngine`, once the prototype is patched (once per process). */
let stockWrite: WriteToEngine | undefined;
/** engine.io's WebSocket transport class, once one connection showed the expected shape. */
let wsTransport: unknown;
/** Why the first WebSocket transport seen was not shaped as expected (then nothing goes fast). */
let transportRejected: string | undefined;

/**
 * The first WebSocket connection seen: has it what `eligible` and the write read, on engine.io's
 * socket and on its transport? (uWebSockets.js transports are named "websocket" too, and have no
 * `ws` sender: they stay stock; so does an engine.io whose private fields changed.)
 */
function learnTransport(conn: EngineConn, logger: Logger): void {
  const t = conn.transport as (Partial<WsTransport> & { name?: unknown }) | null;
  if (t?.name !== "websocket") return;
  const ws = t.socket as Partial<WsSocket> | undefined;
  if (
    typeof conn.readyState === "string" &&
    typeof conn.upgrading === "boolean" &&
    Array.isArray(conn.writeBuffer) &&
    typeof conn.listenerCount === "function" &&
    typeof conn.server?.listenerCount === "function" &&
    typeof t.writable === "boolean" &&
    typeof ws?.readyState === "number" &&
    typeof ws.bufferedAmount === "number" &&
    typeof ws._sender?.sendFrame === "function"
  ) {
    wsTransport = t.constructor;
  } else {
    disable(
      "engine.io's WebSocket connection is not shaped as expected (engine.io 6.6, ws 8)",
      logger,
    );
  }
}

/** Turns the fast path off for the process (every packet stock from then on), logged once. */
function disable(reason: string, logger: Logger, err?: unknown): void {
  if (transportRejected !== undefined) return;
  transportRejected = reason;
  wsTransport = undefined;
  logger.warn({ reason, err }, "fast delivery path disabled");
}

/** Replaces `Client#writeToEngine` (socket.io/dist/client.js) for every client of the process. */
function fastWriteToEngine(this: EngineClient, encodedPackets: unknown, opts: PacketOptions) {
  const state = this.server[STATE];
  if (state !== undefined) {
    const conn = this.conn;
    if (
      state.maxBufferedBytes > 0 &&
      dropIfSlow(conn as unknown as BufferedConn, state.maxBufferedBytes, state.onSlowConsumer)
    ) {
      return;
    }
    if (state.fastOff !== undefined) {
      // Stock path for every packet of this server.
    } else if (wsTransport !== undefined) {
      const text = opts.volatile ? undefined : singleText(encodedPackets);
      let fast = false;
      try {
        fast = text !== undefined && eligible(conn, wsTransport);
      } catch (err) {
        // Internals not as learnt (never seen with engine.io 6.6): stock from now on, never a
        // throw out of a broadcast loop or a backplane's message handler.
        disable("reading engine.io's connection state failed", state.logger, err);
      }
      if (fast) {
        (conn.transport as WsTransport).socket._sender.sendFrame([frameFor(text as string, opts)]);
        state.fast += 1;
        return;
      }
    } else if (transportRejected === undefined) {
      learnTransport(conn, state.logger);
    }
    state.stock += 1;
  }
  if (opts[DEFERRED] === true && opts.wsPreEncodedFrame === undefined) {
    // The adapter left the frame to us (deferredEncode): the stock write gets the one frame the
    // fast path builds, where stock has the adapter's [header, payload] (the same bytes).
    const text = singleText(encodedPackets);
    if (text !== undefined) opts.wsPreEncodedFrame = [frameFor(text, opts)];
  }
  (stockWrite as WriteToEngine).call(this, encodedPackets, opts);
}

/** socket.io-adapter's in-memory `Adapter#_encode`, as the fast path reads and calls it. */
type Encode = (this: EncodingAdapter, packet: unknown, opts: PacketOptions) => unknown[];
interface EncodingAdapter {
  encoder: { encode(packet: unknown): unknown[] };
  nsp?: { server?: EngineClient["server"] };
}

/** socket.io-adapter's own `Adapter#_encode`, once its prototype is patched (once per process). */
let stockEncode: Encode | undefined;

/**
 * Replaces `Adapter#_encode` (socket.io-adapter/dist/in-memory-adapter.js), which every adapter's
 * local broadcast goes through. Stock encodes the packet and also frames it for WebSocket
 * recipients (a Buffer of "4" + the packet, and ws's frame header): on a gateway with the fast
 * path that frame was never used, since the fast path writes its own single-Buffer frame. Here
 * the packet is only encoded, and the frame is built at the first write that needs it (fast or
 * stock, `frameFor`), once per broadcast as before, and not at all when no local client is in
 * the room (a gateway that only relays its clients' publishes to the backplane).
 */
function deferredEncode(this: EncodingAdapter, packet: unknown, opts: PacketOptions): unknown[] {
  const state = this.nsp?.server?.[STATE];
  if (state === undefined || state.fastOff !== undefined || wsTransport === undefined) {
    return (stockEncode as Encode).call(this, packet, opts);
  }
  opts[DEFERRED] = true;
  return this.encoder.encode(packet);
}

/**
 * Patches socket.io-adapter's `Adapter#_encode` once per process; returns why it cannot, or
 * undefined. It checks first that stock's pre-encoded frame is the bytes of `frameTextPacket`
 * (so one frame can stand for it) and lives where engine.io reads it.
 */
function installEncode(): string | undefined {
  if (stockEncode !== undefined) return undefined;
  try {
    const require = createRequire(import.meta.url);
    const fromSocketIo = createRequire(require.resolve("socket.io"));
    const { Adapter } = fromSocketIo("socket.io-adapter") as {
      Adapter?: { prototype: Record<string, unknown> };
    };
    const own = Adapter?.prototype._encode;
    if (typeof own !== "function" || own.length !== 2) {
      return "socket.io-adapter Adapter#_encode not found";
    }
    const packet = '2["m",{"a":"é"}]';
    const opts: PacketOptions = {};
    const encoded = (own as Encode).call({ encoder: { encode: () => [packet] } }, {}, opts);
    const frame = opts.wsPreEncodedFrame;
    if (
      encoded[0] !== packet ||
      !Array.isArray(frame) ||
      !Buffer.concat(frame as Buffer[]).equals(frameTextPacket(packet))
    ) {
      return "socket.io-adapter's pre-encoded frame is not as expected";
    }
    stockEncode = own as Encode;
    (Adapter as { prototype: Record<string, unknown> }).prototype._encode = deferredEncode;
    return undefined;
  } catch (err) {
    return `socket.io-adapter not found: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** Patches socket.io's Client prototype once per process; returns why it cannot, or undefined. */
function install(): string | undefined {
  if (stockWrite !== undefined) return undefined;
  try {
    const require = createRequire(import.meta.url);
    const clientModule = join(dirname(require.resolve("socket.io")), "client.js");
    const { Client } = require(clientModule) as { Client?: { prototype: Record<string, unknown> } };
    const own = Client?.prototype.writeToEngine;
    if (typeof own !== "function" || own.length !== 2) {
      return "socket.io Client#writeToEngine not found";
    }
    stockWrite = own as WriteToEngine;
    (Client as { prototype: Record<string, unknown> }).prototype.writeToEngine = fastWriteToEngine;
    return undefined;
  } catch (err) {
    return `socket.io Client not found: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/**
 * Turns the fast path on for one gateway's Socket.IO server (the prototype patch is shared by
 * the process; a server that did not ask, such as a test's stock server, keeps the stock path).
 * Off (every packet stock, logged once) when the internals check fails, when the server
 * compresses WebSocket frames (`perMessageDeflate`), or when the first WebSocket connection's
 * transport is not shaped as expected.
 */
export function createFastDelivery(
  io: Server,
  logger: Logger,
  options: {
    /** MAX_CLIENT_BUFFER_BYTES: a client with more waiting is disconnected; 0: no bound. */
    maxBufferedBytes?: number;
    /** Called once for each client disconnected for it (engine.io connection id). */
    onSlowConsumer?: (pending: number, connection: string) => void;
  } = {},
  internals: string | undefined = checkInternals(),
): FastDelivery {
  const engineOpts = (io.engine as unknown as { opts?: { perMessageDeflate?: unknown } }).opts;
  const state: GatewayState = {
    fast: 0,
    stock: 0,
    logger,
    fastOff: engineOpts?.perMessageDeflate ? "perMessageDeflate on" : undefined,
    maxBufferedBytes: options.maxBufferedBytes ?? 0,
    onSlowConsumer: options.onSlowConsumer ?? (() => {}),
  };
  // The patch carries the client buffer bound too: installed unless Socket.IO is not as expected.
  const unpatched = internals ?? install();
  const disabled = unpatched ?? state.fastOff;
  if (disabled !== undefined) logger.warn({ reason: disabled }, "fast delivery path disabled");
  if (unpatched !== undefined && state.maxBufferedBytes > 0) {
    logger.error(
      { reason: unpatched },
      "MAX_CLIENT_BUFFER_BYTES is not enforced: Socket.IO's write path is not as expected",
    );
  }
  if (unpatched === undefined) {
    (io as unknown as EngineClient["server"])[STATE] = state;
    if (state.fastOff === undefined) {
      // Without it, adapters frame every broadcast as stock does (and the fast path a second time).
      const encode = installEncode();
      if (encode !== undefined)
        logger.warn({ reason: encode }, "deferred broadcast framing disabled");
    }
  }
  return {
    get enabled() {
      return disabled === undefined && transportRejected === undefined;
    },
    stats: () => ({ fast: state.fast, stock: state.stock }),
  };
}

/**
 * `switchboard_gateway_packets_written_total{path}`: packets written to clients by the fast path
 * and by the stock one, read at scrape time (the hot path only bumps two numbers).
 */
export function registerFastDeliveryMetric(registry: Registry, delivery: FastDelivery): void {
  const reported = { fast: 0, stock: 0 };
  new Counter({
    name: "switchboard_gateway_packets_written_total",
    help: "Socket.IO packets written to clients, by path: fast (one pre-framed WebSocket write) or stock (engine.io)",
    labelNames: ["path"],
    registers: [registry],
    collect() {
      const now = delivery.stats();
      for (const path of ["fast", "stock"] as const) {
        this.inc({ path }, now[path] - reported[path]);
        reported[path] = now[path];
      }
    },
  });
}
