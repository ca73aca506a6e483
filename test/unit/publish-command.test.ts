import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  type CommandCheck,
  checkPublishCommand,
  MAX_COMMAND_DEPTH,
  publishCommandSchema,
} from "../../core/publish-command.js";

const limits = { maxBytes: 4096 };
const SCHEMA_FILE = new URL("../../docs/publish-command.schema.json", import.meta.url);
const EXAMPLE = {
  v: 1,
  id: "3f9c",
  namespace: "/",
  rooms: ["chat:1"],
  except: ["user:9"],
  event: "message",
  data: { text: "hi" },
};

const reasonOf = (check: CommandCheck) => (check.ok ? "ok" : check.reason);

describe("the publish command v1", () => {
  it("accepts the example of docs/PROTOCOL.md, as text, bytes or a value", () => {
    for (const input of [JSON.stringify(EXAMPLE), Buffer.from(JSON.stringify(EXAMPLE)), EXAMPLE]) {
      expect(checkPublishCommand(input, limits)).toEqual({ ok: true, command: EXAMPLE });
    }
  });

  it("needs only v and event; data may be any JSON value", () => {
    for (const data of [undefined, null, 0, false, "text", [1, { a: [] }]]) {
      expect(checkPublishCommand({ v: 1, event: "tick", data }, limits).ok).toBe(true);
    }
  });

  it("lets servers address user rooms and socket ids, which clients may not join", () => {
    const command = { v: 1, event: "m", rooms: ["user:42", "AbCdEfGhIjKlMnOpQrSt"] };
    expect(checkPublishCommand(command, limits).ok).toBe(true);
  });

  it.each([
    ["not JSON", '{"v":1,', "invalid_json", /^not JSON: /],
    ["an array", "[]", "invalid_command", /^command must be an object$/],
    ["a wrong version", { v: 2, event: "m" }, "invalid_command", /^v: must be 1$/],
    ["no version", { event: "m" }, "invalid_command", /^v: is required$/],
    ["no event", { v: 1 }, "invalid_command", /^event: is required$/],
    ["an empty event", { v: 1, event: "" }, "invalid_command", /^event: must be 1-100 chars/],
    [
      "a reserved event",
      { v: 1, event: "connect" },
      "invalid_command",
      /^event: must be 1-100 chars/,
    ],
    [
      "an event that is a number",
      { v: 1, event: 7 },
      "invalid_command",
      /^event: must be a string$/,
    ],
    [
      "rooms as a string",
      { v: 1, event: "m", rooms: "a" },
      "invalid_command",
      /^rooms: must be an array of room names/,
    ],
    [
      "empty rooms",
      { v: 1, event: "m", rooms: [] },
      "invalid_command",
      /^rooms: must not be empty \(omit `rooms`/,
    ],
    [
      "a bad room",
      { v: 1, event: "m", rooms: ["ok", "no spaces"] },
      "invalid_command",
      /^rooms\[1\]: must be 1-200 chars of/,
    ],
    [
      "too many rooms",
      { v: 1, event: "m", rooms: Array(1001).fill("r") },
      "invalid_command",
      /^rooms: must hold at most 1000 rooms$/,
    ],
    [
      "a bad except",
      { v: 1, event: "m", except: [null] },
      "invalid_command",
      /^except\[0\]: must be a string$/,
    ],
    ["an empty id", { v: 1, event: "m", id: "" }, "invalid_command", /^id: must not be empty$/],
    [
      "an id that is a number",
      { v: 1, event: "m", id: 5 },
      "invalid_command",
      /^id: must be a string$/,
    ],
    [
      "a namespace without /",
      { v: 1, event: "m", namespace: "chat" },
      "invalid_command",
      /^namespace: must start with \//,
    ],
    [
      "unknown fields",
      { v: 1, event: "m", room: "a", to: "b" },
      "invalid_command",
      /^room: unknown field; to: unknown field$/,
    ],
  ])("rejects %s with a reason naming the field", (_kind, input, code, reason) => {
    const check = checkPublishCommand(input, limits);
    expect(check).toMatchObject({ ok: false, code });
    expect(reasonOf(check)).toMatch(reason);
  });

  it("lists every problem of a command in one reason", () => {
    expect(reasonOf(checkPublishCommand({ v: 3, rooms: [1] }, limits))).toBe(
      "v: must be 1; rooms[0]: must be a string; event: is required",
    );
  });

  it("rejects a command above the size limit before parsing it, whatever its form", () => {
    const big = { v: 1, event: "m", data: "x".repeat(5000) };
    for (const input of [big, JSON.stringify(big), Buffer.from(JSON.stringify(big))]) {
      const check = checkPublishCommand(input, limits);
      expect(check).toMatchObject({ ok: false, code: "too_large" });
      expect(reasonOf(check)).toMatch(/^command is 50\d\d bytes, over the limit of 4096 bytes$/);
    }
  });

  it("refuses bytes that are not UTF-8 instead of delivering U+FFFD in their place", () => {
    const bytes = Buffer.concat([
      Buffer.from('{"v":1,"rooms":["r"],"event":"m","data":"a'),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('"}'),
    ]);
    expect(checkPublishCommand(bytes, limits)).toEqual({
      ok: false,
      code: "invalid_json",
      reason: "not JSON: the bytes are not valid UTF-8",
    });
    // The same text, valid: accepted, with its non-ASCII characters.
    const valid = checkPublishCommand(
      Buffer.from('{"v":1,"rooms":["r"],"event":"m","data":"aé€😀"}'),
      limits,
    );
    expect(valid).toMatchObject({ ok: true, command: { data: "aé€😀" } });
  });

  describe("nesting depth", () => {
    const nested = (levels: number): unknown => {
      let data: unknown = 0;
      for (let i = 0; i < levels; i++) data = i % 2 === 0 ? [data] : { a: data };
      return data;
    };
    const deepest = { v: 1, event: "m", data: nested(MAX_COMMAND_DEPTH - 1) };
    const tooDeep = { v: 1, event: "m", data: nested(MAX_COMMAND_DEPTH) };
    const forms = (value: unknown) => [
      value,
      JSON.stringify(value),
      Buffer.from(JSON.stringify(value)),
    ];

    it("accepts data nested up to the limit, the command object counted, in every form", () => {
      for (const input of forms(deepest)) expect(checkPublishCommand(input, limits).ok).toBe(true);
    });

    it("rejects one level more with too_deep, in every form", () => {
      for (const input of forms(tooDeep)) {
        const check = checkPublishCommand(input, limits);
        expect(check).toMatchObject({ ok: false, code: "too_deep" });
        expect(reasonOf(check)).toBe(
          `command is nested more than ${MAX_COMMAND_DEPTH} levels deep (objects and arrays, the command itself included)`,
        );
      }
    });

    it("measures brackets inside strings as text, escaped quotes included", () => {
      const data = `${"[{".repeat(100)}\\""${"]}".repeat(100)}`;
      const check = checkPublishCommand(JSON.stringify({ v: 1, event: "m", data }), limits);
      expect(check).toMatchObject({ ok: true, command: { data } });
    });

    it("rejects 50,000 levels before parsing, as text or a value, without overflowing the stack", () => {
      const depth = 50_000;
      const text = `{"v":1,"event":"m","data":${"[".repeat(depth)}${"]".repeat(depth)}}`;
      const value = JSON.parse(text) as unknown;
      for (const input of [text, Buffer.from(text), value]) {
        const check = checkPublishCommand(input, { maxBytes: 1 << 20 });
        expect(check).toMatchObject({ ok: false, code: "too_deep" });
      }
    });

    it("counts a cyclic value as too deep instead of walking it forever", () => {
      const cyclic: Record<string, unknown> = { v: 1, event: "m" };
      cyclic.data = { back: cyclic };
      expect(checkPublishCommand(cyclic, limits)).toMatchObject({ ok: false, code: "too_deep" });
    });
  });

  it("rejects a value that JSON cannot carry", () => {
    const check = checkPublishCommand({ v: 1, event: "m", data: 10n }, limits);
    expect(check).toMatchObject({ ok: false, code: "invalid_json" });
  });
});

describe("docs/publish-command.schema.json", () => {
  const file = JSON.parse(readFileSync(SCHEMA_FILE, "utf8")) as JsonSchema;

  it("is what zod generates from the schema the gateways validate with", () => {
    // Regenerate: npx tsx -e 'import {z} from "zod"; import {publishCommandSchema as s} from
    //   "./core/publish-command.ts"; console.log(JSON.stringify(z.toJSONSchema(s), null, 2))'
    expect(file).toEqual(z.toJSONSchema(publishCommandSchema));
  });

  it("accepts and rejects the same commands as the zod schema", () => {
    const corpus: unknown[] = [
      EXAMPLE,
      { v: 1, event: "m" },
      { v: 1, event: "m", data: null },
      { v: 1, event: "a:b.c-d_e", rooms: ["user:1"], except: [] },
      { v: 1, event: "m", namespace: "/admin/x" },
      { v: 2, event: "m" },
      { v: "1", event: "m" },
      { event: "m" },
      { v: 1 },
      { v: 1, event: "" },
      { v: 1, event: "x".repeat(101) },
      { v: 1, event: "error" },
      { v: 1, event: "disconnecting" },
      { v: 1, event: "has space" },
      { v: 1, event: "m", rooms: [] },
      { v: 1, event: "m", rooms: ["a b"] },
      { v: 1, event: "m", rooms: ["r".repeat(201)] },
      { v: 1, event: "m", rooms: "r" },
      { v: 1, event: "m", except: [1] },
      { v: 1, event: "m", id: "" },
      { v: 1, event: "m", id: "i".repeat(201) },
      { v: 1, event: "m", namespace: "" },
      { v: 1, event: "m", namespace: "no-slash" },
      { v: 1, event: "m", extra: true },
      [],
      "command",
      null,
    ];
    for (const command of corpus) {
      const byZod = publishCommandSchema.safeParse(command).success;
      expect(validates(file, command), JSON.stringify(command)).toBe(byZod);
    }
  });
});

interface JsonSchema {
  type?: string;
  const?: unknown;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean;
  not?: { enum?: unknown[] };
}

/** The part of JSON Schema the file uses, enough to check that it means what zod means. */
function validates(schema: JsonSchema, value: unknown): boolean {
  if (schema.const !== undefined && value !== schema.const) return false;
  if (schema.not?.enum?.includes(value)) return false;
  switch (schema.type) {
    case undefined:
      return true;
    case "number":
      return typeof value === "number";
    case "string":
      return (
        typeof value === "string" &&
        value.length >= (schema.minLength ?? 0) &&
        value.length <= (schema.maxLength ?? Number.POSITIVE_INFINITY) &&
        (schema.pattern === undefined || new RegExp(schema.pattern, "u").test(value))
      );
    case "array":
      return (
        Array.isArray(value) &&
        value.length >= (schema.minItems ?? 0) &&
        value.length <= (schema.maxItems ?? Number.POSITIVE_INFINITY) &&
        value.every((item) => schema.items === undefined || validates(schema.items, item))
      );
    case "object": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
      const record = value as Record<string, unknown>;
      const properties = schema.properties ?? {};
      if (!(schema.required ?? []).every((key) => key in record)) return false;
      return Object.entries(record).every(([key, item]) =>
        key in properties
          ? validates(properties[key]!, item)
          : schema.additionalProperties !== false,
      );
    }
    default:
      throw new Error(`the test's validator does not know type ${schema.type}`);
  }
}
