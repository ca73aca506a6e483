import { Writable } from "node:stream";
import type { Channel } from "amqplib";

/**
 * Writes one publish (basic.publish method frame, content header frame, one body frame) to an
 * amqplib channel as one Buffer, built here instead of by `channel.publish()`. amqplib builds the
 * same bytes in five steps per message: an options object of 20 fields and a `headers` object
 * (`Args.publish`), a method frame, a properties frame that always carries a headers table (an
 * empty one when none is given: 4 bytes to encode, and a table the receiver's amqplib decodes
 * into an object), a zeroed body frame with a copy of the body, and one more copy of all three
 * into the Buffer it writes. Here: one `allocUnsafe`, the method frame copied from a cache per
 * routing key, the body copied once, and only the properties we send (`app-id`); no headers table.
 *
 * What goes on the wire is the same AMQP publish (the body is unchanged; the headers property is
 * absent instead of empty), and it goes the same way: into the channel's write queue
 * (`connection.channels[ch].buffer`, where amqplib writes it too, so its order with the channel's
 * other frames and its back-pressure are amqplib's), with the connection's heartbeat flag set as
 * amqplib does. `test/unit/amqp-publish-frames.test.ts` checks the bytes against amqplib's own
 * encoders. Returns undefined where the internals are not found; `write` returns undefined for a
 * message it does not take (a body that needs more than one frame, a name over 255 bytes, a
 * channel amqplib has closed or is closing): the caller then publishes through amqplib.
 *
 * When the channel's queue is empty and amqplib's mux may write (`muxer.blocked` is false: the
 * socket did not ask to wait for 'drain'), the Buffer goes to the socket at once, as amqplib's
 * mux would write it (and as amqplib writes its heartbeats): nothing of this channel is ahead of
 * it, so its order holds, and frames of other channels are whole frames either way. That skips,
 * per publish, the queue's stream write and read, its 'readable' event and amqplib's
 * `setImmediate` that follows it. A socket that says "wait" blocks the mux as amqplib's own write
 * does; later publishes then queue behind, and the queue's back-pressure is amqplib's.
 */
export function publishFrameWriter(
  channel: Channel,
  exchange: string,
): ((key: string, body: Buffer, appId: string | undefined) => Written | undefined) | undefined {
  const internals = channel as unknown as {
    ch?: unknown;
    connection?: Connection;
    sendMessage?: unknown;
  };
  const connection = internals.connection;
  const ch = internals.ch;
  const channelSend = internals.sendMessage;
  const connectionSend = connection?.sendMessage;
  const entries = connection?.channels;
  if (
    typeof ch !== "number" ||
    !connection ||
    typeof channelSend !== "function" ||
    typeof connectionSend !== "function" ||
    !Array.isArray(entries) ||
    typeof connection.frameMax !== "number"
  )
    return undefined;
  const queue = (entries[ch] as { buffer?: WriteQueue } | null | undefined)?.buffer;
  if (!queue || typeof queue.write !== "function") return undefined;
  const muxer = connection.muxer;
  const out = muxer?.out;
  const direct =
    muxer &&
    typeof muxer.blocked === "boolean" &&
    out instanceof Writable &&
    typeof queue.readableLength === "number" &&
    typeof queue.writableLength === "number"
      ? { muxer, out }
      : undefined;
  const exchangeBytes = Buffer.byteLength(exchange);
  if (exchangeBytes > 255) return undefined;

  const methodFrames = new Map<string, Buffer>();
  const appIds = new Map<string, Buffer>();
  const methodFrame = (key: string): Buffer | undefined => {
    let frame = methodFrames.get(key);
    if (frame) return frame;
    const keyBytes = Buffer.byteLength(key);
    if (keyBytes > 255) return undefined;
    // class, method, ticket, exchange, routing key, bits (mandatory, immediate: off)
    const size = 2 + 2 + 2 + 1 + exchangeBytes + 1 + keyBytes + 1;
    frame = Buffer.allocUnsafe(FRAME_HEADER + size + 1);
    let at = frame.writeUInt8(FRAME_METHOD, 0);
    at = frame.writeUInt16BE(ch, at);
    at = frame.writeUInt32BE(size, at);
    at = frame.writeUInt16BE(CLASS_BASIC, at);
    at = frame.writeUInt16BE(METHOD_PUBLISH, at);
    at = frame.writeUInt16BE(0, at);
    at = frame.writeUInt8(exchangeBytes, at);
    at += frame.write(exchange, at);
    at = frame.writeUInt8(keyBytes, at);
    at += frame.write(key, at);
    at = frame.writeUInt8(0, at);
    frame.writeUInt8(FRAME_END, at);
    if (methodFrames.size >= MAX_CACHED) methodFrames.clear();
    methodFrames.set(key, frame);
    return frame;
  };
  const appIdBytes = (appId: string): Buffer | undefined => {
    let bytes = appIds.get(appId);
    if (bytes) return bytes;
    if (Buffer.byteLength(appId) > 255) return undefined;
    bytes = Buffer.from(appId);
    if (appIds.size >= MAX_CACHED) appIds.clear();
    appIds.set(appId, bytes);
    return bytes;
  };

  return (key, body, appId) => {
    // amqplib replaces these methods on the instance when the channel or connection closes
    // (or starts closing): then it is amqplib's to refuse the publish.
    if (
      internals.sendMessage !== channelSend ||
      connection.sendMessage !== connectionSend ||
      (entries[ch] as { buffer?: unknown } | null | undefined)?.buffer !== queue
    )
      return undefined;
    if (body.length === 0 || body.length + FRAME_OVERHEAD > (connection.frameMax as number))
      return undefined;
    const method = methodFrame(key);
    const app = appId === undefined ? undefined : appIdBytes(appId);
    if (!method || (appId !== undefined && !app)) return undefined;
    const headerSize = 2 + 2 + 8 + 2 + (app ? 1 + app.length : 0);
    const all = Buffer.allocUnsafe(
      method.length + FRAME_HEADER + headerSize + 1 + FRAME_HEADER + body.length + 1,
    );
    let at = method.copy(all, 0);
    at = all.writeUInt8(FRAME_HEADER_TYPE, at);
    at = all.writeUInt16BE(ch, at);
    at = all.writeUInt32BE(headerSize, at);
    at = all.writeUInt16BE(CLASS_BASIC, at);
    at = all.writeUInt16BE(0, at); // weight
    at = all.writeUInt32BE(0, at); // body size, high 32 bits (one frame: below frameMax)
    at = all.writeUInt32BE(body.length, at);
    at = all.writeUInt16BE(app ? FLAG_APP_ID : 0, at);
    if (app) {
      at = all.writeUInt8(app.length, at);
      at += app.copy(all, at);
    }
    at = all.writeUInt8(FRAME_END, at);
    at = all.writeUInt8(FRAME_BODY, at);
    at = all.writeUInt16BE(ch, at);
    at = all.writeUInt32BE(body.length, at);
    at += body.copy(all, at);
    all.writeUInt8(FRAME_END, at);
    connection.sentSinceLastCheck = true;
    if (
      direct &&
      !direct.muxer.blocked &&
      queue.readableLength === 0 &&
      queue.writableLength === 0 &&
      !direct.out.destroyed
    ) {
      if (!direct.out.write(all)) direct.muxer.blocked = true;
      return "sent";
    }
    return queue.write(all) ? "queued" : "full";
  };
}

/**
 * Where a publish went: on the socket ("sent"), or into the channel's queue, for amqplib's mux to
 * write ("queued"), which also asked to pause until the channel's 'drain' ("full").
 */
export type Written = "sent" | "queued" | "full";

interface Connection {
  muxer?: { blocked?: unknown; out?: unknown };
  channels?: unknown;
  frameMax?: unknown;
  sendMessage?: unknown;
  sentSinceLastCheck?: boolean;
}

interface WriteQueue {
  write(chunk: Buffer): boolean;
  readableLength?: unknown;
  writableLength?: unknown;
}

const FRAME_METHOD = 1;
const FRAME_HEADER_TYPE = 2;
const FRAME_BODY = 3;
const FRAME_END = 206;
/** type, channel, size */
const FRAME_HEADER = 7;
/** A frame's header and end byte. */
const FRAME_OVERHEAD = 8;
const CLASS_BASIC = 60;
const METHOD_PUBLISH = 40;
/** basic.properties flag bit of app-id (AMQP 0-9-1: bit 3 of the property flags). */
const FLAG_APP_ID = 0x0008;
/** Routing keys and sender ids whose bytes are kept; past this many, the cache starts over. */
const MAX_CACHED = 1_000;
