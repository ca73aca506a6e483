import { isUtf8 } from "node:buffer";
import * as z from "zod";
import { jsonTextExceedsDepth, valueExceedsDepth } from "./json-depth.js";
import { EVENT_PATTERN, isValidEventName, RESERVED_EVENT_NAMES, ROOM_PATTERN } from "./names.js";

/**
 * The publish command, version 1 (docs/PROTOCOL.md): one JSON object for every path (RabbitMQ
 * queue, Redis stream, HTTP, library). docs/publish-command.schema.json is
 * `z.toJSONSchema(publishCommandSchema)`; test/unit/publish-command.test.ts keeps them equal.
 */

export { RESERVED_EVENT_NAMES };

/** Where publishers and gateways meet unless configured otherwise; written here only. */
export const PUBLISH_DEFAULTS = {
  /** Durable quorum queue of the RabbitMQ path (INGEST_AMQP_QUEUE, `--queue`). */
  amqpQueue: "switchboard.publish",
  /** Stream of the Redis path (INGEST_REDIS_STREAM, `--stream`); the command is in field `command`. */
  redisStream: "switchboard:publish",
  /** Consumer group of the gateways on the stream (INGEST_REDIS_GROUP). */
  redisGroup: "switchboard",
  /** Largest command as UTF-8 JSON, in bytes (MAX_COMMAND_BYTES). */
  maxCommandBytes: 256 * 1024,
  /** Deliveries of one valid command before it becomes a dead letter (INGEST_MAX_ATTEMPTS). */
  maxAttempts: 10,
} as const;

/** The dead-letter queue of a RabbitMQ publish queue. */
export const amqpDeadQueue = (queue: string): string => `${queue}.dead`;
/** The dead-letter stream of a Redis publish stream. */
export const redisDeadStream = (stream: string): string => `${stream}:dead`;

/**
 * Deepest nesting of objects and arrays in a command: the command object is level 1, so `data`
 * may nest 31 levels. Every backplane carries that (the AMQP codec's MessagePack encoder stops at
 * 100 levels, the broadcast envelope adds 4), and nothing deeper reaches a recursive encoder.
 */
export const MAX_COMMAND_DEPTH = 32;

/** Namespace names: `/` then up to 199 chars of [A-Za-z0-9:_.@/-]. */
export const NAMESPACE_PATTERN = /^\/[A-Za-z0-9:_.@/-]{0,199}$/;
export const MAX_ROOMS_PER_COMMAND = 1000;

const ROOM_RULE = "must be 1-200 chars of [A-Za-z0-9:_.@/-]";
const EVENT_RULE = "must be 1-100 chars of [A-Za-z0-9:_.-], not a reserved Socket.IO event";

/** `is required` when absent, else `must be <what>`: the reasons publishers read. */
const expected = (what: string) => (issue: { input?: unknown }) =>
  issue.input === undefined ? "is required" : `must be ${what}`;

const room = z.string({ error: expected("a string") }).regex(ROOM_PATTERN, ROOM_RULE);

const roomList = (what: string, minItems: number) =>
  z
    .array(room, { error: expected(`an array of room names (${what})`) })
    .min(minItems, "must not be empty (omit `rooms` to reach every client of the namespace)")
    .max(MAX_ROOMS_PER_COMMAND, `must hold at most ${MAX_ROOMS_PER_COMMAND} rooms`);

export const publishCommandSchema = z
  .strictObject(
    {
      v: z
        .literal(1, { error: (issue) => (issue.input === undefined ? "is required" : "must be 1") })
        .meta({ description: "Command version; this schema is version 1." }),
      id: z
        .string({ error: expected("a string") })
        .min(1, "must not be empty")
        .max(200, "must be at most 200 chars")
        .optional()
        .meta({
          description:
            "Unique id chosen by the publisher. Clients receive it as `{id}` in the event's second argument; an at-least-once redelivery carries the same id.",
        }),
      namespace: z
        .string({ error: expected("a string") })
        .regex(NAMESPACE_PATTERN, "must start with / and be 1-200 chars of [A-Za-z0-9:_.@/-]")
        .optional()
        .meta({ description: 'Socket.IO namespace. Default "/".' }),
      rooms: roomList("1 to 1000", 1)
        .optional()
        .meta({ description: "Rooms to reach; absent means every client of the namespace." }),
      except: roomList("0 to 1000", 0)
        .optional()
        .meta({ description: "Clients in any of these rooms do not receive the event." }),
      event: z
        .string({ error: expected("a string") })
        .regex(EVENT_PATTERN, EVENT_RULE)
        .refine(isValidEventName, EVENT_RULE)
        .meta({ not: { enum: [...RESERVED_EVENT_NAMES] } }),
      data: z.unknown().optional().meta({
        description:
          "Any JSON value: the event's first argument at the clients (null when absent).",
      }),
    },
    { error: (issue) => (issue.code === "unrecognized_keys" ? undefined : "must be an object") },
  )
  .meta({
    title: "Switchboard publish command, version 1",
    description: `What a backend puts on the RabbitMQ queue ${PUBLISH_DEFAULTS.amqpQueue}, in the \`command\` field of the Redis stream ${PUBLISH_DEFAULTS.redisStream}, or in the body of POST /v1/publish. Size limit: MAX_COMMAND_BYTES of the gateway (default ${PUBLISH_DEFAULTS.maxCommandBytes / 1024} KiB), as UTF-8 JSON. Depth limit: ${MAX_COMMAND_DEPTH} levels of objects and arrays, the command object included.`,
  });

export type PublishCommand = z.output<typeof publishCommandSchema>;

/** Stable codes of a rejected command (HTTP `error` field, dead-letter `code`). */
export type CommandErrorCode = "invalid_json" | "too_large" | "too_deep" | "invalid_command";

export type CommandCheck =
  | { ok: true; command: PublishCommand }
  | { ok: false; code: CommandErrorCode; reason: string };

/** Longest reason we write into headers and responses; the rest is cut with an ellipsis. */
const MAX_REASON_CHARS = 500;

/**
 * Checks a command as it arrives (bytes or text of JSON) or as a value (the library's input).
 * Never throws: every failure is a code and a reason naming the field, e.g.
 * `rooms[0]: must be 1-200 chars of [A-Za-z0-9:_.@/-]`. Size and depth are checked before the
 * text is parsed (or the value serialized), so that no input can overflow the stack.
 */
export function checkPublishCommand(
  input: Buffer | string | unknown,
  options: { maxBytes: number },
): CommandCheck {
  let value: unknown = input;
  if (typeof input === "string" || Buffer.isBuffer(input)) {
    const bytes = typeof input === "string" ? Buffer.byteLength(input) : input.length;
    if (bytes > options.maxBytes) return tooLarge(bytes, options.maxBytes);
    if (jsonTextExceedsDepth(input, MAX_COMMAND_DEPTH)) return TOO_DEEP;
    // Bytes that are not UTF-8 would be decoded with U+FFFD in their place: the command the
    // sender meant is not what would be delivered.
    if (typeof input !== "string" && !isUtf8(input)) {
      return { ok: false, code: "invalid_json", reason: "not JSON: the bytes are not valid UTF-8" };
    }
    try {
      value = JSON.parse(input.toString());
    } catch (err) {
      return {
        ok: false,
        code: "invalid_json",
        reason: cut(`not JSON: ${(err as Error).message}`),
      };
    }
  } else {
    if (valueExceedsDepth(input, MAX_COMMAND_DEPTH)) return TOO_DEEP;
    let text: string | undefined;
    try {
      text = JSON.stringify(input);
    } catch (err) {
      return {
        ok: false,
        code: "invalid_json",
        reason: cut(`not serializable: ${(err as Error).message}`),
      };
    }
    const bytes = Buffer.byteLength(text ?? "");
    if (bytes > options.maxBytes) return tooLarge(bytes, options.maxBytes);
  }
  const result = publishCommandSchema.safeParse(value);
  if (result.success) return { ok: true, command: result.data };
  const reason = result.error.issues.map(describeIssue).join("; ");
  return { ok: false, code: "invalid_command", reason: cut(reason) };
}

const TOO_DEEP: CommandCheck = {
  ok: false,
  code: "too_deep",
  reason: `command is nested more than ${MAX_COMMAND_DEPTH} levels deep (objects and arrays, the command itself included)`,
};

function tooLarge(bytes: number, maxBytes: number): CommandCheck {
  return {
    ok: false,
    code: "too_large",
    reason: `command is ${bytes} bytes, over the limit of ${maxBytes} bytes`,
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => `${pathOf([...issue.path, key])}: unknown field`).join("; ");
  }
  return issue.path.length === 0
    ? `command ${issue.message}`
    : `${pathOf(issue.path)}: ${issue.message}`;
}

function pathOf(path: PropertyKey[]): string {
  let text = "";
  for (const part of path) {
    text += typeof part === "number" ? `[${part}]` : `${text ? "." : ""}${String(part)}`;
  }
  return text;
}

function cut(text: string): string {
  return text.length <= MAX_REASON_CHARS ? text : `${text.slice(0, MAX_REASON_CHARS - 1)}…`;
}
