import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DecodeOptions,
  decodeMessage,
  MessageRejected,
} from "../../services/bridge/message.js";
import { encodeEmit, SWITCHBOARD_HOST_ID } from "../../services/bridge/outgoing.js";

const PYTHON = "/usr/bin/python3";
const OPTIONS: DecodeOptions = {
  maxBytes: 1 << 20,
  maxDepth: 100,
  maxItems: 100_000,
  jsonData: "args",
};

/** A message pickled by Python as python-socketio <= 5.13 does (`pickle.dumps(message)`). */
function pickled(message: string): Buffer {
  const hex = execFileSync(PYTHON, ["-c", `import pickle\nprint(pickle.dumps(${message}).hex())`], {
    encoding: "utf8",
  });
  return Buffer.from(hex.trim(), "hex");
}

const json = (text: string) => Buffer.from(text);

function rejected(body: Buffer, options = OPTIONS): MessageRejected {
  try {
    decodeMessage(body, options);
  } catch (err) {
    expect(err).toBeInstanceOf(MessageRejected);
    return err as MessageRejected;
  }
  throw new Error("the message was accepted");
}

describe("python-socketio messages as the bridge reads them", () => {
  it("a pickled emit with a tuple is several arguments, room lists and skip_sid kept", () => {
    const { format, message } = decodeMessage(
      pickled(`{"method": "emit", "event": "my response", "data": ({"a": 1}, "two", 3),
        "namespace": "/chat", "room": ("r1", "r2"), "skip_sid": "sid1", "callback": None,
        "host_id": "h1"}`),
      OPTIONS,
    );
    expect(format).toBe("pickle");
    expect(message).toEqual({
      method: "emit",
      event: "my response",
      args: [{ a: 1 }, "two", 3],
      namespace: "/chat",
      rooms: ["r1", "r2"],
      skipSids: ["sid1"],
      wantsCallback: false,
      hostId: "h1",
    });
  });

  it("a pickled emit of one value is one argument, of None no argument, a list one argument", () => {
    const args = (data: string) => {
      const { message } = decodeMessage(
        pickled(
          `{"method": "emit", "event": "e", "data": ${data}, "namespace": "/", "room": None, "skip_sid": None, "callback": None, "host_id": "h"}`,
        ),
        OPTIONS,
      );
      return message.method === "emit" ? message.args : undefined;
    };
    expect(args(`{"x": b"\\x01"}`)).toEqual([{ x: Buffer.from([1]) }]);
    expect(args("None")).toEqual([]);
    expect(args("[1, 2]")).toEqual([[1, 2]]);
  });

  it("JSON from python-socketio >= 5.15.1: data is the list of arguments", () => {
    const base = `"method": "emit", "event": "e", "namespace": "/", "room": "r", "skip_sid": null, "callback": null, "host_id": "h"`;
    const args = (data: string, options = OPTIONS) => {
      const { message } = decodeMessage(json(`{${base}, "data": ${data}}`), options);
      return message.method === "emit" ? message.args : undefined;
    };
    expect(args(`[{"x": 1}]`)).toEqual([{ x: 1 }]);
    expect(args(`["a", "b"]`)).toEqual(["a", "b"]);
    expect(args(`[null]`)).toEqual([null]);
    const nan = args(`[NaN, Infinity, -Infinity, "NaN inside a string"]`)!;
    expect(nan[0]).toBeNaN();
    expect(nan.slice(1)).toEqual([
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      "NaN inside a string",
    ]);
    // 5.14.0-5.15.0 sent the single argument as it is: PYTHON_BRIDGE_JSON_DATA=single.
    const single = { ...OPTIONS, jsonData: "single" as const };
    expect(args(`["a", "b"]`, single)).toEqual([["a", "b"]]);
    expect(args(`{"x": 1}`, single)).toEqual([{ x: 1 }]);
    expect(args(`null`, single)).toEqual([]);
  });

  it("JSON with binary attachments: placeholders become Buffers", () => {
    const b64 = Buffer.from([0, 1, 2, 255]).toString("base64");
    const { message } = decodeMessage(
      json(`{"method": "emit", "event": "bin", "namespace": "/", "room": null, "skip_sid": null,
        "callback": null, "host_id": "h", "binary": true,
        "data": [[{"file": {"_placeholder": true, "num": 0}}, "text"], "${b64}"]}`),
      OPTIONS,
    );
    expect(message.method === "emit" && message.args).toEqual([
      { file: Buffer.from([0, 1, 2, 255]) },
      "text",
    ]);
  });

  it("the other methods", () => {
    const decode = (text: string) => decodeMessage(json(text), OPTIONS).message;
    expect(decode(`{"method": "disconnect", "sid": "s1", "namespace": "/chat"}`)).toEqual({
      method: "disconnect",
      sid: "s1",
      namespace: "/chat",
      hostId: undefined,
    });
    expect(
      decode(
        `{"method": "enter_room", "sid": "s1", "room": "r", "namespace": "/", "host_id": "h"}`,
      ),
    ).toMatchObject({ method: "enter_room", sid: "s1", room: "r" });
    expect(
      decode(
        `{"method": "leave_room", "sid": "s1", "room": "r", "namespace": "/", "host_id": "h"}`,
      ),
    ).toMatchObject({ method: "leave_room" });
    expect(decode(`{"method": "close_room", "room": "r", "namespace": null}`)).toMatchObject({
      method: "close_room",
      room: "r",
      namespace: "/",
    });
    expect(
      decode(
        `{"method": "callback", "host_id": "h", "sid": "s", "namespace": "/", "id": 1, "args": []}`,
      ),
    ).toMatchObject({ method: "callback" });
    expect(
      decode(`{"method": "emit", "event": "e", "data": [1], "callback": ["s", "/", 3]}`),
    ).toMatchObject({ wantsCallback: true, rooms: null, skipSids: [] });
  });

  it.each([
    ["non-dict JSON", json(`["method", "emit"]`), "not a dict", "json"],
    ["a JSON string", json(`"emit"`), "not a dict", "json"],
    [
      "garbage",
      Buffer.from([0x01, 0x02, 0x03]),
      "neither a pickle nor JSON|unknown opcode",
      "unknown|pickle",
    ],
    ["no method", json(`{"event": "e"}`), "no method", "json"],
    ["an unknown method", json(`{"method": "exec"}`), "unknown method", "json"],
    [
      "a reserved event",
      json(`{"method": "emit", "event": "connect", "data": [1]}`),
      "reserved",
      "json",
    ],
    [
      "a bad room",
      json(`{"method": "emit", "event": "e", "data": [1], "room": 5}`),
      "room must be",
      "json",
    ],
    [
      "a bad namespace",
      json(`{"method": "emit", "event": "e", "data": [1], "namespace": "chat"}`),
      "namespace",
      "json",
    ],
    [
      "deep nesting",
      json(`{"method": "emit", "event": "e", "data": ${"[".repeat(200)}${"]".repeat(200)}}`),
      "nesting deeper",
      "json",
    ],
    [
      "a bad attachment",
      json(
        `{"method": "emit", "event": "e", "binary": true, "data": [[{"_placeholder": true, "num": 1}], "AA=="]}`,
      ),
      "no attachment",
      "json",
    ],
    ["a non-dict pickle", pickled(`["emit"]`), "not a dict", "pickle"],
    [
      "a pickled set as data",
      pickled(`{"method": "emit", "event": "e", "data": {1}}`),
      "set cannot be sent",
      "pickle",
    ],
  ])("refuses %s, saying why", (_name, body, reason, format) => {
    const err = rejected(body);
    expect(err.reason).toMatch(new RegExp(reason));
    expect(err.format).toMatch(new RegExp(`^(${format})$`));
  });

  it("refuses a message over maxBytes", () => {
    expect(
      rejected(json(`{"method": "emit", "event": "e", "data": ["${"x".repeat(200)}"]}`), {
        ...OPTIONS,
        maxBytes: 100,
      }).reason,
    ).toMatch(/exceeds 100/);
  });
});

describe("what migration mode puts on the channel", () => {
  const emit = {
    event: "news",
    args: [{ file: Buffer.from([1, 2, 3]), text: "t" }, 7],
    namespace: "/",
    rooms: ["r1"],
    skipSids: ["sid1"],
  };

  it("reads back as the same emit, binary included, with Switchboard's host id (args)", () => {
    const text = encodeEmit(emit, "args");
    expect(JSON.parse(text)).toMatchObject({
      method: "emit",
      binary: true,
      room: "r1",
      skip_sid: "sid1",
      callback: null,
      host_id: SWITCHBOARD_HOST_ID,
    });
    const { message } = decodeMessage(Buffer.from(text), OPTIONS);
    expect(message).toMatchObject({
      method: "emit",
      event: "news",
      args: emit.args,
      hostId: SWITCHBOARD_HOST_ID,
    });
  });

  it("sends the first argument alone in single mode", () => {
    const text = encodeEmit({ ...emit, args: [{ a: 1 }], rooms: null, skipSids: [] }, "single");
    expect(JSON.parse(text)).toMatchObject({ data: { a: 1 }, room: null, skip_sid: null });
    expect(text).not.toContain("binary");
  });
});

describe("decoding never fails with anything but a rejection", () => {
  it("on random text and bytes", () => {
    const check = (body: Buffer) => {
      try {
        decodeMessage(body, OPTIONS);
      } catch (err) {
        if (!(err instanceof MessageRejected)) throw err;
      }
    };
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (text) => check(Buffer.from(text))),
      {
        numRuns: 3000,
        seed: 3,
      },
    );
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (value) => {
        check(Buffer.from(JSON.stringify(value)));
        check(
          Buffer.from(
            JSON.stringify({
              method: "emit",
              event: "e",
              data: value,
              room: value,
              skip_sid: value,
              binary: value,
            }),
          ),
        );
      }),
      { numRuns: 3000, seed: 4 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => check(Buffer.from(bytes))),
      {
        numRuns: 3000,
        seed: 5,
      },
    );
  });
});
