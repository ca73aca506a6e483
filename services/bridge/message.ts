import { RESERVED_EVENTS } from "../../core/names.js";
import { checkJsonValue, pythonToJavaScript, type ValueLimits, ValueRejected } from "./convert.js";
import { looksLikeBinaryPickle, type PickleRejected, readPickle } from "./pickle.js";
import { parsePythonJson } from "./python-json.js";
import { PyDict, PyTuple, type PyValue } from "./python-values.js";

/**
 * python-socketio's message-queue messages (`PubSubManager`), decoded into what the bridge does.
 * Up to 5.13 they are pickles (and the listeners also accept JSON); from 5.14 they are JSON text.
 * Both are accepted; neither format carries the sender's version.
 */

export type MessageFormat = "pickle" | "json";
export const METHODS = [
  "emit",
  "disconnect",
  "enter_room",
  "leave_room",
  "close_room",
  "callback",
] as const;
export type Method = (typeof METHODS)[number];

/**
 * How `data` of a JSON emit is read: python-socketio >= 5.15.1 always sends the list of arguments
 * (`args`); 5.14.0-5.15.0 send the single argument as it is (`single`), as pickles always did.
 */
export type JsonDataRule = "args" | "single";

interface Common {
  namespace: string;
  /** The sending process; python-socketio uses it to ignore its own messages. */
  hostId: string | undefined;
}

export type BridgeMessage =
  | (Common & {
      method: "emit";
      event: string;
      args: unknown[];
      /** null: everyone in the namespace; otherwise the union of these rooms (or socket ids). */
      rooms: string[] | null;
      skipSids: string[];
      /** The sender asked for the clients' acknowledgement, which cannot cross to Switchboard. */
      wantsCallback: boolean;
    })
  | (Common & { method: "disconnect"; sid: string })
  | (Common & { method: "enter_room" | "leave_room"; sid: string; room: string })
  | (Common & { method: "close_room"; room: string })
  | (Common & { method: "callback" });

export interface DecodeOptions extends ValueLimits {
  /** Largest message accepted, in bytes. */
  maxBytes: number;
  jsonData: JsonDataRule;
}

/** Why a message was refused, with what is known of it for the metric labels. */
export class MessageRejected extends Error {
  constructor(
    readonly reason: string,
    readonly format: MessageFormat | "unknown",
    readonly method: Method | "unknown",
  ) {
    super(reason);
  }
}

export interface Decoded {
  format: MessageFormat;
  message: BridgeMessage;
}

const MAX_NAME_CHARS = 1000;

/** Decodes one message body, or throws `MessageRejected`; never evaluates anything. */
export function decodeMessage(body: Buffer, options: DecodeOptions): Decoded {
  const format = sniffFormat(body);
  if (body.length > options.maxBytes) {
    throw new MessageRejected(
      `message of ${body.length} bytes exceeds ${options.maxBytes}`,
      format,
      "unknown",
    );
  }
  if (format === "pickle") {
    let value: PyValue;
    try {
      value = readPickle(body, { maxBytes: options.maxBytes });
    } catch (err) {
      throw new MessageRejected((err as PickleRejected).reason ?? String(err), "pickle", "unknown");
    }
    if (!(value instanceof PyDict)) throw new MessageRejected("not a dict", "pickle", "unknown");
    const fields = (name: string): unknown => {
      const item = value.get(name);
      if (item === undefined) return undefined;
      if (name === "data") return item; // converted by the data rule below
      return item instanceof PyTuple ? item.items : item;
    };
    return { format, message: build(fields, "pickle", options) };
  }
  let parsed: unknown;
  try {
    parsed = parsePythonJson(body.toString("utf8"));
  } catch {
    throw new MessageRejected("neither a pickle nor JSON", "unknown", "unknown");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new MessageRejected("not a dict", "json", "unknown");
  }
  const record = parsed as Record<string, unknown>;
  const fields = (name: string): unknown =>
    Object.hasOwn(record, name) ? record[name] : undefined;
  return { format, message: build(fields, "json", options) };
}

/**
 * Protocol 2+ pickles start with PROTO (0x80); JSON objects with `{` (possibly after spaces).
 * Anything else is tried as a protocol 0/1 pickle, whose first opcode is a letter or `(`/`}`/`]`.
 */
function sniffFormat(body: Buffer): MessageFormat {
  if (looksLikeBinaryPickle(body)) return "pickle";
  const head = body.subarray(0, 16).toString("latin1").trimStart();
  return /^([{["\-0-9]|true|false|null|NaN|Infinity)/.test(head) ? "json" : "pickle";
}

type Fields = (name: string) => unknown;

function build(field: Fields, format: MessageFormat, options: DecodeOptions): BridgeMessage {
  const method = field("method");
  if (method === undefined) throw new MessageRejected("no method", format, "unknown");
  if (typeof method !== "string" || !(METHODS as readonly string[]).includes(method)) {
    throw new MessageRejected(
      `unknown method ${JSON.stringify(String(method)).slice(0, 60)}`,
      format,
      "unknown",
    );
  }
  const m = method as Method;
  const fail = (reason: string): never => {
    throw new MessageRejected(reason, format, m);
  };
  const namespaceField = field("namespace");
  const namespace = namespaceField === undefined || namespaceField === null ? "/" : namespaceField;
  if (!isName(namespace) || !namespace.startsWith("/"))
    fail("namespace must be a string starting with /");
  const hostField = field("host_id");
  const hostId = typeof hostField === "string" ? hostField : undefined;
  const common = { namespace: namespace as string, hostId };

  switch (m) {
    case "callback":
      return { ...common, method: m };
    case "disconnect": {
      const sid = field("sid");
      if (!isName(sid)) fail("sid must be a string");
      return { ...common, method: m, sid: sid as string };
    }
    case "close_room": {
      const room = field("room");
      if (!isName(room)) fail("room must be a string");
      return { ...common, method: m, room: room as string };
    }
    case "enter_room":
    case "leave_room": {
      const sid = field("sid");
      const room = field("room");
      if (!isName(sid)) fail("sid must be a string");
      if (!isName(room)) fail("room must be a string");
      return { ...common, method: m, sid: sid as string, room: room as string };
    }
    case "emit": {
      const event = field("event");
      if (!isName(event) || event === "") fail("event must be a non-empty string");
      if (RESERVED_EVENTS.has(event as string))
        fail(`event ${JSON.stringify(event)} is reserved by Socket.IO`);
      const rooms = nameList(field("room"), options.maxItems);
      if (rooms === false) fail("room must be null, a string or a list of strings");
      const skip = nameList(field("skip_sid"), options.maxItems);
      if (skip === false) fail("skip_sid must be null, a string or a list of strings");
      const callback = field("callback");
      let args: unknown[];
      try {
        args =
          format === "pickle"
            ? pickleArgs(field("data") as PyValue | undefined, options)
            : jsonArgs(field("data"), field("binary"), options);
      } catch (err) {
        if (err instanceof ValueRejected || err instanceof MessageRejected)
          fail(`data: ${err.message}`);
        throw err;
      }
      return {
        ...common,
        method: m,
        event: event as string,
        args,
        rooms: rooms === null ? null : (rooms as string[]),
        skipSids: (skip as string[] | null) ?? [],
        wantsCallback: callback !== undefined && callback !== null,
      };
    }
  }
}

function isName(value: unknown): value is string {
  return typeof value === "string" && value.length <= MAX_NAME_CHARS;
}

/** null, one name, or a list/tuple of names: python-socketio's `room` and `skip_sid`. */
function nameList(value: unknown, max: number): string[] | null | false {
  if (value === undefined || value === null) return null;
  if (isName(value)) return [value];
  if (!Array.isArray(value) || value.length > max) return false;
  return value.every(isName) ? (value as string[]) : false;
}

/** Pickle: a tuple is several arguments, None is none (python-socketio's own `emit` rule). */
function pickleArgs(data: PyValue | undefined, limits: ValueLimits): unknown[] {
  if (data === undefined || data === null) return [];
  if (data instanceof PyTuple) return pythonToJavaScript(data, limits) as unknown[];
  return [pythonToJavaScript(data, limits)];
}

function jsonArgs(data: unknown, binary: unknown, options: DecodeOptions): unknown[] {
  let value = data;
  if (binary === true) {
    // python-socketio >= 5.14.2: `data` is [value with placeholders, base64 attachment, ...].
    if (!Array.isArray(value) || value.length < 1)
      throw new ValueRejected("binary data is not a list");
    const [payload, ...parts] = value;
    value = checkJsonValue(payload, options, parts.map(base64Attachment));
  } else if (Array.isArray(binary)) {
    // The same attachments carried beside `data` instead of inside it.
    value = checkJsonValue(value, options, binary.map(base64Attachment));
  } else {
    value = checkJsonValue(value, options);
  }
  if (value === undefined) return [];
  if (options.jsonData === "args") return Array.isArray(value) ? value : [value];
  return value === undefined || value === null ? [] : [value];
}

function base64Attachment(part: unknown): Buffer {
  if (typeof part !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(part)) {
    throw new ValueRejected("binary attachment is not base64");
  }
  return Buffer.from(part, "base64");
}
