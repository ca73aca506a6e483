import { createRequire } from "node:module";
import { PassThrough, Writable } from "node:stream";
import type { Channel } from "amqplib";
import { describe, expect, it } from "vitest";
import { publishFrameWriter } from "../../adapters/amqp/publish-frames.js";

const require = createRequire(import.meta.url);
const lib = require.resolve("amqplib").replace(/channel_api\.js$/, "lib/");
const { Connection } = require(`${lib}connection.js`) as {
  Connection: { prototype: { sendMessage: (...args: unknown[]) => boolean } };
};
const defs = require(`${lib}defs.js`) as { BasicPublish: number; BasicProperties: number };
const Args = require(`${lib}api_args.js`) as {
  publish(exchange: string, key: string, options?: object): Record<string, unknown>;
};
const { parseFrame, decodeFrame } = require(`${lib}frame.js`) as {
  parseFrame(bin: Buffer, max: number): { rest: Buffer } | false;
  decodeFrame(frame: object): { id: number; fields: Record<string, unknown>; size?: number };
};

/** What amqplib's channel and connection look like to the writer; writes are recorded. */
function fakeChannel(frameMax = 4096) {
  const written: Buffer[] = [];
  const queue = { write: (chunk: Buffer) => written.push(chunk) > 0 };
  const connection = {
    channels: [null, null, { buffer: queue }],
    frameMax,
    sendMessage: Connection.prototype.sendMessage,
    sentSinceLastCheck: false,
  };
  const channel = { ch: 2, connection, sendMessage() {} };
  return { channel, connection, written };
}

/** amqplib's own bytes for the same publish, without the headers table it always adds. */
function amqplibBytes(exchange: string, key: string, body: Buffer, appId?: string): Buffer {
  const { connection } = fakeChannel();
  const written: Buffer[] = [];
  connection.channels[2] = { buffer: { write: (chunk: Buffer) => written.push(chunk) > 0 } };
  const fields = { ...Args.publish(exchange, key, appId === undefined ? {} : { appId }) };
  fields.headers = undefined;
  Connection.prototype.sendMessage.call(
    connection,
    2,
    defs.BasicPublish,
    fields,
    defs.BasicProperties,
    fields,
    body,
  );
  return Buffer.concat(written);
}

function decodeAll(bytes: Buffer) {
  const frames = [];
  let rest = bytes;
  while (rest.length > 0) {
    const parsed = parseFrame(rest, 0);
    if (!parsed) throw new Error("truncated frame");
    frames.push(decodeFrame(parsed));
    rest = parsed.rest;
  }
  return frames;
}

describe("amqp publish frames: the bytes amqplib would write", () => {
  const body = Buffer.from([1, 0x82, 0xa3, 0x75, 0x69, 0x64]);

  it("a publish with an app-id is amqplib's publish, byte for byte, without the empty headers table", () => {
    const { channel, connection, written } = fakeChannel();
    const write = publishFrameWriter(channel as unknown as Channel, "socket.io");
    expect(write?.("r.~2F.chat:1", body, "0123456789abcdef")).toBe("queued");
    expect(written).toHaveLength(1);
    expect(written[0]).toEqual(amqplibBytes("socket.io", "r.~2F.chat:1", body, "0123456789abcdef"));
    expect(connection.sentSinceLastCheck).toBe(true);
    // Written twice from the caches: the same bytes.
    write?.("r.~2F.chat:1", body, "0123456789abcdef");
    expect(written[1]).toEqual(written[0]);
  });

  it("amqplib's parser reads it back: exchange, key, app-id, body, no headers", () => {
    const { channel, written } = fakeChannel();
    publishFrameWriter(channel as unknown as Channel, "ex.ü")?.("a.~2F", body, "node-1");
    const [method, header, content] = decodeAll(written[0] as Buffer);
    expect(method?.id).toBe(defs.BasicPublish);
    expect(method?.fields).toMatchObject({
      exchange: "ex.ü",
      routingKey: "a.~2F",
      mandatory: false,
    });
    expect(header?.size).toBe(body.length);
    expect(header?.fields.appId).toBe("node-1");
    expect(header?.fields.headers).toBeUndefined();
    expect((content as unknown as { content: Buffer }).content).toEqual(body);
  });

  it("without an app-id (the emitter), no property at all", () => {
    const { channel, written } = fakeChannel();
    publishFrameWriter(channel as unknown as Channel, "socket.io")?.("a.~2F", body, undefined);
    expect(written[0]).toEqual(amqplibBytes("socket.io", "a.~2F", body));
  });

  it("leaves to amqplib a body larger than one frame, and a channel amqplib has closed", () => {
    const { channel, written } = fakeChannel(64);
    const write = publishFrameWriter(channel as unknown as Channel, "socket.io");
    expect(write?.("k", Buffer.alloc(57), undefined)).toBeUndefined();
    expect(write?.("k", Buffer.alloc(56), undefined)).toBe("queued");
    channel.sendMessage = () => {}; // what amqplib's invalidateSend does on close
    expect(write?.("k", body, undefined)).toBeUndefined();
    expect(written).toHaveLength(1);
  });

  it("goes to the socket at once while nothing of the channel is queued and the mux may write", () => {
    const { channel, connection, written } = fakeChannel();
    const socket: Buffer[] = [];
    let full = false;
    const out = new Writable({ write: (_chunk, _encoding, done) => done() });
    out.write = (chunk: Buffer) => socket.push(chunk) > 0 && !full;
    const queue = new PassThrough({ objectMode: true });
    queue.write = (chunk: Buffer) => written.push(chunk) > 0;
    const muxer = { blocked: false, out };
    Object.assign(connection, { muxer, channels: [null, null, { buffer: queue }] });
    const write = publishFrameWriter(channel as unknown as Channel, "socket.io");
    expect(write?.("k", body, "a")).toBe("sent");
    expect(socket[0]).toEqual(amqplibBytes("socket.io", "k", body, "a"));
    full = true; // the socket asks to wait: the mux is blocked as amqplib's own write would
    expect(write?.("k", body, "a")).toBe("sent");
    expect(muxer.blocked).toBe(true);
    expect(write?.("k", body, "a")).toBe("queued"); // behind, for amqplib's mux after 'drain'
    muxer.blocked = false;
    queue.push(Buffer.from([1])); // something of the channel still queued: behind it
    expect(write?.("k", body, "a")).toBe("queued");
    expect([socket.length, written.length]).toEqual([2, 2]);
  });

  it("is not used where amqplib's internals are not found", () => {
    expect(publishFrameWriter({} as Channel, "socket.io")).toBeUndefined();
  });
});
