import { encode } from "@msgpack/msgpack";
import type { ClusterMessage } from "socket.io-adapter";
import { MessageType } from "socket.io-adapter";
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage, WIRE_VERSION } from "../../adapters/amqp/codec.js";
import { SwitchboardError } from "../../core/errors.js";

function broadcast(packet: unknown, requestId?: string): ClusterMessage {
  return {
    uid: "abc",
    nsp: "/chat",
    type: MessageType.BROADCAST,
    data: { packet, opts: { rooms: ["r1"], except: [], flags: { volatile: true } }, requestId },
  } as ClusterMessage;
}

function decodeError(frame: Uint8Array): SwitchboardError {
  try {
    decodeMessage(frame);
  } catch (err) {
    return err as SwitchboardError;
  }
  throw new Error("expected a decode error");
}

describe("amqp codec", () => {
  it("starts every frame with the wire version", () => {
    expect(encodeMessage(broadcast({ type: 2, data: ["ev"] }))[0]).toBe(WIRE_VERSION);
  });

  it("round-trips a message with Buffers nested in the packet, byte-exact and as Buffers", () => {
    const inner = Buffer.from([0, 1, 2, 255]);
    const empty = Buffer.alloc(0);
    const packet = {
      type: 2,
      nsp: "/chat",
      data: ["file", { parts: [inner, { deeper: empty }] }, Buffer.from("hi")],
    };
    const decoded = decodeMessage(encodeMessage(broadcast(packet))) as ClusterMessage & {
      data: { packet: typeof packet };
    };
    const data = decoded.data.packet.data as [
      string,
      { parts: [Buffer, { deeper: Buffer }] },
      Buffer,
    ];
    expect(Buffer.isBuffer(data[1].parts[0])).toBe(true);
    expect(data[1].parts[0].equals(inner)).toBe(true);
    expect(Buffer.isBuffer(data[1].parts[1].deeper)).toBe(true);
    expect(data[1].parts[1].deeper.byteLength).toBe(0);
    expect(data[2].toString()).toBe("hi");
    expect(decoded).toMatchObject({ uid: "abc", nsp: "/chat", type: MessageType.BROADCAST });
  });

  it("decodes binary as Buffers from a plain Uint8Array frame too", () => {
    const packet = { type: 5, data: ["file", Buffer.from([7, 8, 9])] };
    const frame = new Uint8Array(encodeMessage(broadcast(packet)));
    const decoded = decodeMessage(frame) as { data: { packet: typeof packet } };
    const file = decoded.data.packet.data[1] as Buffer;
    expect(Buffer.isBuffer(file)).toBe(true);
    expect([...file]).toEqual([7, 8, 9]);
  });

  it("frames never share memory: an earlier frame is intact after later encodes", () => {
    const first = encodeMessage(broadcast({ type: 2, data: ["first"] }));
    const copy = Buffer.from(first);
    encodeMessage(broadcast({ type: 2, data: ["second", "x".repeat(100)] }));
    encodeMessage(broadcast({ type: 2, data: [Buffer.alloc(100_000)] })); // grows the encoder
    expect(first.equals(copy)).toBe(true);
    expect(decodeMessage(first)).toMatchObject({ data: { packet: { data: ["first"] } } });
  });

  it("leaves absent fields absent, so a plain broadcast never turns into an ack request", () => {
    const decoded = decodeMessage(encodeMessage(broadcast({ type: 2, data: ["x"] }))) as {
      data: object;
    };
    expect("requestId" in decoded.data).toBe(false);
  });

  it("rejects a frame of another wire version with SWB_ERR_DECODE", () => {
    const frame = encodeMessage(broadcast({ type: 2, data: ["x"] }));
    frame[0] = WIRE_VERSION + 1;
    const err = decodeError(frame);
    expect(err).toBeInstanceOf(SwitchboardError);
    expect(err.code).toBe("SWB_ERR_DECODE");
    expect(err.message).toMatch(/version/);
  });

  it.each([
    ["an empty frame", new Uint8Array(0)],
    ["a version byte alone", new Uint8Array([WIRE_VERSION])],
    ["text", Buffer.from("hello world")],
    ["invalid MessagePack", new Uint8Array([WIRE_VERSION, 0xc1])],
    ["truncated MessagePack", encodeMessage(broadcast({ type: 2, data: ["x"] })).subarray(0, 10)],
    ["a non-envelope value", Buffer.concat([Buffer.from([WIRE_VERSION]), encode([1, 2])])],
    [
      "an envelope without data",
      Buffer.concat([Buffer.from([WIRE_VERSION]), encode({ uid: "a", nsp: "/", type: 3 })]),
    ],
  ])("rejects %s with SWB_ERR_DECODE", (_name, frame) => {
    expect(decodeError(frame).code).toBe("SWB_ERR_DECODE");
  });

  it("throws on encoding values MessagePack cannot carry (the transport counts a drop), and encodes the next message as usual", () => {
    expect(() => encodeMessage(broadcast({ type: 2, data: [() => 1] }))).toThrow();
    const next = decodeMessage(encodeMessage(broadcast({ type: 2, data: ["after"] })));
    expect(next).toMatchObject({ uid: "abc", data: { packet: { data: ["after"] } } });
  });
});
