import type { ClusterMessage, ClusterResponse } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { Decoder, Encoder, MessageType } from "./cjs.js";

/**
 * Wire version, the first byte of every frame. Bump it when the envelope
 * changes incompatibly: a node then drops (and counts) frames of the other
 * version instead of misreading them (docs/BACKPLANES.md).
 */
export const WIRE_VERSION = 1;

/**
 * Sender id of messages that come from an emitter, not a node: socket.io-adapter
 * does not count it as a cluster member, and nothing is ever sent back to it.
 */
export const EMITTER_UID = "emitter";

/**
 * Message kinds of our own, next to socket.io-adapter's `MessageType` (1-13 today).
 * The numbers are the wire format: append only, never reorder. They start far
 * above the base's so that kinds the base adds later cannot collide; a node
 * that does not know a kind ignores it (the base's `onMessage` default case).
 */
export const SwitchboardMessageType = {
  /** "Which rooms do you have?" to every node (`allRooms()`). */
  ALL_ROOMS: 101,
  /** One node's answer, to the asking node only. */
  ALL_ROOMS_RESPONSE: 102,
} as const;

export interface AllRoomsRequest {
  uid: string;
  nsp: string;
  type: typeof SwitchboardMessageType.ALL_ROOMS;
  data: { requestId: string };
}

export interface AllRoomsResponse {
  uid: string;
  nsp: string;
  type: typeof SwitchboardMessageType.ALL_ROOMS_RESPONSE;
  data: { requestId: string; rooms: unknown[] };
}

/** What travels on the exchange: a request/broadcast or a response, the base's or ours. */
export type WireMessage = ClusterMessage | ClusterResponse | AllRoomsRequest | AllRoomsResponse;

/** Kinds whose envelope has no `data` (everything else must carry an object). */
const WITHOUT_DATA: ReadonlySet<number> = new Set([
  MessageType.INITIAL_HEARTBEAT,
  MessageType.HEARTBEAT,
  MessageType.ADAPTER_CLOSE,
]);

// One encoder and one decoder per process: `encode()`/`decode()` build a new
// one per call (the encoder with a fresh 2 KB buffer), which showed in the
// gateway's profile. Both are re-entrant (they clone themselves if entered).
// ignoreUndefined: the base adapter tests `requestId !== undefined`; a nil on
// the wire would decode as null and turn a plain broadcast into an ack request.
let encoder = new Encoder({ ignoreUndefined: true });
const decoder = new Decoder();
/** The encoder keeps its largest buffer; one this large is let go after use. */
const MAX_KEPT_ENCODER_BYTES = 64 * 1024;

/** Encodes a message as `[version byte][MessagePack body]`. Throws on unencodable input. */
export function encodeMessage(message: WireMessage): Buffer {
  let body: Uint8Array;
  try {
    body = encoder.encodeSharedRef(message); // a view on the encoder's buffer, copied below
  } catch (err) {
    encoder = new Encoder({ ignoreUndefined: true }); // a throw may leave it mid-message
    throw err;
  }
  const frame = Buffer.allocUnsafe(body.byteLength + 1);
  frame[0] = WIRE_VERSION;
  frame.set(body, 1);
  if (body.buffer.byteLength > MAX_KEPT_ENCODER_BYTES)
    encoder = new Encoder({ ignoreUndefined: true });
  return frame;
}

/**
 * Decodes a frame. Throws `SwitchboardError` with code `SWB_ERR_DECODE` on a
 * foreign version, a truncated or garbage body, or an envelope without
 * `uid`/`nsp`/`type`; the caller logs, counts and drops.
 */
export function decodeMessage(frame: Uint8Array): WireMessage {
  if (frame.byteLength < 2) {
    throw new SwitchboardError(ErrorCode.DECODE, `frame too short (${frame.byteLength} bytes)`);
  }
  if (frame[0] !== WIRE_VERSION) {
    throw new SwitchboardError(
      ErrorCode.DECODE,
      `unsupported wire version ${frame[0]} (this node speaks ${WIRE_VERSION})`,
    );
  }
  // MessagePack binary comes back as `subarray()` views of the input, and a
  // Buffer's subarray is a Buffer: given a Buffer, every binary value decodes
  // as the Buffer Socket.IO needs to send it as an attachment (no copy, and no
  // walk over the message to convert them).
  const body = Buffer.isBuffer(frame)
    ? frame.subarray(1)
    : Buffer.from(frame.buffer, frame.byteOffset + 1, frame.byteLength - 1);
  let value: unknown;
  try {
    value = decoder.decode(body);
  } catch (cause) {
    throw new SwitchboardError(ErrorCode.DECODE, "invalid MessagePack body", { cause });
  }
  if (!isEnvelope(value)) {
    throw new SwitchboardError(ErrorCode.DECODE, "not a cluster message envelope");
  }
  return value as WireMessage;
}

function isEnvelope(value: unknown): value is { uid: string; nsp: string; type: number } {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.uid === "string" &&
    typeof v.nsp === "string" &&
    typeof v.type === "number" &&
    Number.isInteger(v.type) &&
    (WITHOUT_DATA.has(v.type) || (typeof v.data === "object" && v.data !== null))
  );
}
