import { EventEmitter } from "node:events";
import { createRequire } from "node:module";
import type { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  checkInternals,
  createFastDelivery,
  eligible,
  frameTextPacket,
} from "../../services/gateway/fast-delivery.js";
import { createLogger } from "../../services/gateway/logger.js";

/** ws's frame builder, which engine.io and socket.io-adapter use for pre-encoded frames. */
const { Sender } = createRequire(import.meta.url)("ws") as {
  Sender: { frame(data: Buffer, options: object): Buffer[] };
};

/** Stand-ins for engine.io's transports: the fast path tells them apart by class. */
class WsTransport {
  writable = true;
  socket = { readyState: WebSocket.OPEN as number, bufferedAmount: 0, _sender: { sendFrame() {} } };
}
class PollingTransport {
  writable = true;
}

/** An engine.io connection in the state the fast path accepts; each test breaks one rule. */
function conn(transport: object = new WsTransport()) {
  const server = new EventEmitter();
  return Object.assign(new EventEmitter(), {
    readyState: "open",
    upgrading: false,
    writeBuffer: [] as unknown[],
    transport,
    server,
  });
}

describe("which packets take the fast path", () => {
  it("an open, idle WebSocket connection does", () => {
    expect(eligible(conn(), WsTransport)).toBe(true);
  });

  it("a connection with packets in engine.io's write buffer does not (they would be overtaken)", () => {
    const c = conn();
    c.writeBuffer.push({ type: "message", data: '2["earlier"]' });
    expect(eligible(c, WsTransport)).toBe(false);
  });

  it("a polling connection does not", () => {
    expect(eligible(conn(new PollingTransport()), WsTransport)).toBe(false);
  });

  it("a connection in the middle of an upgrade does not", () => {
    const c = conn();
    c.upgrading = true;
    expect(eligible(c, WsTransport)).toBe(false);
  });

  it("a closing or closed connection does not", () => {
    for (const state of ["closing", "closed", "opening"]) {
      const c = conn();
      c.readyState = state;
      expect(eligible(c, WsTransport)).toBe(false);
    }
  });

  it("a WebSocket with a stock write in flight does not", () => {
    const transport = new WsTransport();
    transport.writable = false;
    expect(eligible(conn(transport), WsTransport)).toBe(false);
  });

  it("a slow client whose socket still holds unsent bytes does not (stock backpressure)", () => {
    const transport = new WsTransport();
    transport.socket.bufferedAmount = 1;
    expect(eligible(conn(transport), WsTransport)).toBe(false);
  });

  it("a WebSocket that is closing does not", () => {
    const transport = new WsTransport();
    transport.socket.readyState = WebSocket.CLOSING;
    expect(eligible(conn(transport), WsTransport)).toBe(false);
  });

  it("a connection whose engine.io packet events someone listens to does not", () => {
    for (const event of ["packetCreate", "flush", "drain"]) {
      const c = conn();
      c.on(event, () => {});
      expect(eligible(c, WsTransport), event).toBe(false);
    }
    for (const event of ["flush", "drain"]) {
      const c = conn();
      c.server.on(event, () => {});
      expect(eligible(c, WsTransport), `server ${event}`).toBe(false);
    }
  });

  it("nothing does before a WebSocket transport was recognised", () => {
    expect(eligible(conn(), undefined)).toBe(false);
  });
});

describe("the fast path's frames", () => {
  const stockFrame = (packet: string) =>
    Buffer.concat(
      Sender.frame(Buffer.from(`4${packet}`), {
        readOnly: false,
        mask: false,
        rsv1: false,
        opcode: 1,
        fin: true,
      }),
    );

  it("are byte for byte the frames ws builds for engine.io, at every header length", () => {
    const packets = [
      "",
      '2["msg",{"a":1}]',
      "x".repeat(124),
      "x".repeat(125),
      "x".repeat(126),
      "x".repeat(65_534),
      "x".repeat(65_535),
      "x".repeat(70_000),
      `2["é",${JSON.stringify("€😀".repeat(40))}]`,
      '2["lone \ud800 surrogate"]',
    ];
    for (const packet of packets) {
      expect(frameTextPacket(packet).equals(stockFrame(packet)), packet.slice(0, 20)).toBe(true);
    }
  });

  it("rely on internals that the installed socket.io, engine.io and ws have", () => {
    expect(checkInternals()).toBeUndefined();
  });
});

describe("when the fast path turns itself off", () => {
  const io = (opts: object) => ({ engine: { opts } }) as unknown as Server;
  const logger = createLogger({ gatewayId: "t", level: "silent" });

  it("stays off when the server compresses WebSocket frames", () => {
    expect(createFastDelivery(io({ perMessageDeflate: { threshold: 0 } }), logger).enabled).toBe(
      false,
    );
  });

  it("stays off when the internals check failed", () => {
    expect(createFastDelivery(io({}), logger, {}, "ws Sender.frame missing").enabled).toBe(false);
  });

  it("is on otherwise", () => {
    expect(createFastDelivery(io({}), logger).enabled).toBe(true);
  });
});
