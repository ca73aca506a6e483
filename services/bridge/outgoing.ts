import type { JsonDataRule } from "./message.js";

/**
 * The `host_id` of every message Switchboard puts on the channel, shared by all its gateways:
 * each gateway ignores messages carrying it, so a broadcast that already crossed the backplane
 * is not delivered a second time from the queue. python-socketio's own host ids are uuid4 hex.
 */
export const SWITCHBOARD_HOST_ID = "switchboard";

export interface OutgoingEmit {
  event: string;
  /** The emit's arguments, as Switchboard clients receive them. */
  args: unknown[];
  namespace: string;
  /** null: the whole namespace. */
  rooms: string[] | null;
  skipSids: string[];
}

/**
 * A python-socketio `emit` message as JSON text, as python-socketio >= 5.14 writes one. `data`
 * follows `rule`: `args` (>= 5.15.1) is the list of arguments; `single` (5.14.0-5.15.0, and any
 * pickle-era server reading JSON) is the first argument alone. Buffers become Socket.IO binary
 * placeholders with their base64 attachments after the data (`binary: true`).
 */
export function encodeEmit(emit: OutgoingEmit, rule: JsonDataRule): string {
  const attachments: string[] = [];
  const data = rule === "args" ? emit.args : (emit.args[0] ?? null);
  const payload = replaceBuffers(data, attachments, 0);
  const message = {
    method: "emit",
    event: emit.event,
    data: attachments.length > 0 ? [payload, ...attachments] : payload,
    namespace: emit.namespace,
    room: emit.rooms === null ? null : emit.rooms.length === 1 ? emit.rooms[0] : emit.rooms,
    skip_sid:
      emit.skipSids.length === 0
        ? null
        : emit.skipSids.length === 1
          ? emit.skipSids[0]
          : emit.skipSids,
    callback: null,
    host_id: SWITCHBOARD_HOST_ID,
    ...(attachments.length > 0 ? { binary: true } : {}),
  };
  return JSON.stringify(message);
}

/** Client data passed the gateway's size checks; depth is bounded by what Socket.IO decoded. */
function replaceBuffers(value: unknown, attachments: string[], depth: number): unknown {
  if (depth > 1000) throw new RangeError("data nested too deeply");
  if (value === null || typeof value !== "object") return value;
  if (Buffer.isBuffer(value) || value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
    const bytes = Buffer.isBuffer(value)
      ? value
      : value instanceof ArrayBuffer
        ? Buffer.from(value)
        : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    attachments.push(bytes.toString("base64"));
    return { _placeholder: true, num: attachments.length - 1 };
  }
  if (Array.isArray(value))
    return value.map((item) => replaceBuffers(item, attachments, depth + 1));
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") return value;
  const out: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) {
    Object.defineProperty(out, key, {
      value: replaceBuffers(item, attachments, depth + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}
