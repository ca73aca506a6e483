import { decode, encode } from "@msgpack/msgpack";
import { type ClusterMessage, type ClusterResponse, MessageType } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";

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

/** Encodes a message as `[version byte][MessagePack body]`. Throws on unencodable input. */
export function encodeMessage(message: WireMessage): Buffer {
  // ignoreUndefined: the base adapter tests `requestId !== undefined`; a nil on
  // the wire would decode as null and turn a plain broadcast into an ack request.
  const body = encode(message, { ignoreUndefined: true });
  const frame = Buffer.allocUnsafe(body.byteLength + 1);
  frame[0] = WIRE_VERSION;
  frame.set(body, 1);
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
  let value: unknown;
  try {
    value = decode(frame.subarray(1));
  } catch (cause) {
    throw new SwitchboardError(ErrorCode.DECODE, "invalid MessagePack body", { cause });
  }
  if (!isEnvelope(value)) {
    throw new SwitchboardError(ErrorCode.DECODE, "not a cluster message envelope");
  }
  return restoreBuffers(value) as WireMessage;
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

/**
 * MessagePack gives binary back as Uint8Array; Socket.IO only sends Buffers
 * (and ArrayBuffers) as binary attachments, so convert them back, deeply.
 * The Buffer is a view on the frame, not a copy.
 */
function restoreBuffers(value: unknown): unknown {
  if (value instanceof Uint8Array) {
    return Buffer.isBuffer(value)
      ? value
      : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = restoreBuffers(value[i]);
    return value;
  }
  if (typeof value === "object" && value !== null) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = restoreBuffers(record[key]);
  }
  return value;
}
