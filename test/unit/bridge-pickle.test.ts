import { execFileSync } from "node:child_process";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { pythonToJavaScript, ValueRejected } from "../../services/bridge/convert.js";
import { PickleRejected, readPickle } from "../../services/bridge/pickle.js";
import { PyDict, PySet, PyTuple } from "../../services/bridge/python-values.js";

// Debian's interpreter: the one CI installs python3-socketio for, and Python's own pickler is
// the reference these tests compare against.
const PYTHON = "/usr/bin/python3";
const LIMITS = { maxBytes: 1024 * 1024 };
const VALUE_LIMITS = { maxDepth: 100, maxItems: 100_000 };

/** Runs Python code that prints one hex pickle per line; returns them as Buffers. */
function python(code: string, input = ""): Buffer[] {
  const out = execFileSync(PYTHON, ["-c", code], { input, encoding: "utf8", timeout: 20_000 });
  return out
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => Buffer.from(line, "hex"));
}

const read = (body: Buffer) => pythonToJavaScript(readPickle(body, LIMITS), VALUE_LIMITS);

function rejection(body: Buffer): string {
  try {
    readPickle(body, LIMITS);
  } catch (err) {
    expect(err).toBeInstanceOf(PickleRejected);
    expect((err as PickleRejected).code).toBe("SWB_ERR_DECODE");
    return (err as PickleRejected).reason;
  }
  throw new Error("the pickle was accepted");
}

describe("the safe pickle reader reads what Python's pickler writes", () => {
  const message = (protocol: number) => `{
    "method": "emit", "event": "my response", "namespace": "/chat", "room": ["a", "b"],
    "skip_sid": None, "callback": None, "host_id": "abc",
    "data": {"text": "h\\u00e9llo \\U0001F600 back\\\\slash\\nnewline", "n": 42, "neg": -7,
             "big": 2**70, "negbig": -(2**64) - 1, "i32": -2**31, "u16": 65535, "f": 1.5,
             "nan": float("nan"), "inf": float("inf"), "t": True, "no": False, "none": None,
             ${protocol >= 3 ? '"bytes": b"\\x00\\xffbin",' : ""} "list": [1, [2, []]],
             "tuple": (1, "x"), "empty": {}, 7: "int key", True: "bool key", None: "none key",
             "__proto__": {"polluted": True}},
  }`;

  it.each([0, 1, 2, 3, 4, 5])("an emit message pickled with protocol %i", (protocol) => {
    const [body] = python(
      `import pickle\nprint(pickle.dumps(${message(protocol)}, protocol=${protocol}).hex())`,
    );
    const value = read(body!) as Record<string, unknown>;
    expect(value.method).toBe("emit");
    expect(value.room).toEqual(["a", "b"]);
    expect(value.skip_sid).toBeNull();
    const data = value.data as Record<string, unknown>;
    expect(data.text).toBe("h\u00e9llo \u{1F600} back\\slash\nnewline");
    expect(data.n).toBe(42);
    expect(data.neg).toBe(-7);
    expect(data.big).toBe(2 ** 70);
    expect(data.negbig).toBe(-(2 ** 64) - 1);
    expect(data.i32).toBe(-(2 ** 31));
    expect(data.u16).toBe(65535);
    expect(data.f).toBe(1.5);
    expect(data.nan).toBeNaN();
    expect(data.inf).toBe(Number.POSITIVE_INFINITY);
    expect([data.t, data.no, data.none]).toEqual([true, false, null]);
    if (protocol >= 3) {
      // Protocols 0-2 write bytes as a call to _codecs.encode, which the reader refuses (below).
      expect(data.bytes).toEqual(Buffer.from([0, 0xff, 0x62, 0x69, 0x6e]));
    }
    expect(data.list).toEqual([1, [2, []]]);
    expect(data.tuple).toEqual([1, "x"]);
    expect(data.empty).toEqual({});
    // Python's json writes these keys as strings.
    expect(data["7"]).toBe("int key");
    expect(data.true).toBe("bool key");
    expect(data.null).toBe("none key");
    expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
    expect(Object.hasOwn(data, "__proto__")).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("keeps a tuple distinct from a list (a tuple of data is several emit arguments)", () => {
    const [body] = python(`import pickle\nprint(pickle.dumps(((1, 2), [3]), protocol=2).hex())`);
    const value = readPickle(body!, LIMITS) as PyTuple;
    expect(value).toBeInstanceOf(PyTuple);
    expect(value.items[0]).toBeInstanceOf(PyTuple);
    expect(Array.isArray(value.items[1])).toBe(true);
  });

  it("refuses bytes pickled by protocols 0-2 and bytearray before 5, which Python writes as calls", () => {
    const bodies = python(`import pickle
for p in (0, 1, 2): print(pickle.dumps(b"x", protocol=p).hex())
for p in (0, 1, 2, 3, 4): print(pickle.dumps(bytearray(b"x"), protocol=p).hex())`);
    for (const body of bodies)
      expect(rejection(body)).toMatch(/forbidden opcode (GLOBAL|STACK_GLOBAL)/);
  });

  it("reads bytearray from protocol 5", () => {
    const [body] = python(`import pickle\nprint(pickle.dumps(bytearray(b"ab"), protocol=5).hex())`);
    expect(read(body!)).toEqual(Buffer.from("ab"));
  });

  it("reads sets but refuses to turn them into Socket.IO data", () => {
    const [body] = python(`import pickle\nprint(pickle.dumps({1, 2}, protocol=4).hex())`);
    expect(readPickle(body!, LIMITS)).toBeInstanceOf(PySet);
    expect(() => read(body!)).toThrow(ValueRejected);
  });

  it("matches Python on random JSON-like values, every protocol", () => {
    const values = fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 60, seed: 11 });
    const input = values.map((v) => JSON.stringify(v)).join("\n");
    const bodies = python(
      "import sys, json, pickle\nfor line in sys.stdin:\n  v = json.loads(line)\n  for p in range(6): print(pickle.dumps(v, protocol=p).hex())",
      input,
    );
    expect(bodies).toHaveLength(values.length * 6);
    bodies.forEach((body, i) => {
      const expected = JSON.parse(JSON.stringify(values[Math.floor(i / 6)]));
      expect(JSON.parse(JSON.stringify(read(body)))).toEqual(expected);
    });
  });
});

describe("the safe pickle reader refuses everything that is not plain data", () => {
  const marker = "/tmp/switchboard-never-created";
  const hostile = {
    "os.system": `import os\nclass E:\n  def __reduce__(self): return (os.system, ("touch ${marker}",))`,
    "builtins.eval": `import builtins\nclass E:\n  def __reduce__(self): return (builtins.eval, ("open('${marker}','w')",))`,
    "subprocess.Popen": `import subprocess\nclass E:\n  def __reduce__(self): return (subprocess.Popen, (["touch", "${marker}"],))`,
    "an object with state": `class E:\n  def __init__(self): self.x = 1`,
  };

  for (const [name, setup] of Object.entries(hostile)) {
    it(`refuses a pickle calling ${name}, in every protocol`, () => {
      const bodies = python(
        `import pickle\n${setup}\nfor p in range(6): print(pickle.dumps({"method": "emit", "data": E()}, protocol=p).hex())`,
      );
      for (const body of bodies) {
        expect(rejection(body)).toMatch(
          /^forbidden opcode (GLOBAL|STACK_GLOBAL|REDUCE|BUILD|INST|OBJ|NEWOBJ)/,
        );
      }
    });
  }

  it("refuses persistent ids, extension codes and out-of-band buffers", () => {
    const bodies = python(`import pickle, io, copyreg
class P(pickle.Pickler):
  def persistent_id(self, obj): return "ref" if obj == "secret" else None
for p in (0, 2):
  f = io.BytesIO(); P(f, protocol=p).dump(["secret"]); print(f.getvalue().hex())
copyreg.add_extension("collections", "OrderedDict", 240)
import collections
print(pickle.dumps(collections.OrderedDict(), protocol=2).hex())
print(pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5, buffer_callback=lambda b: False).hex())
`);
    expect(bodies.map(rejection)).toEqual([
      expect.stringMatching(/forbidden opcode PERSID/),
      expect.stringMatching(/forbidden opcode BINPERSID/),
      expect.stringMatching(/forbidden opcode EXT1/),
      expect.stringMatching(/forbidden opcode NEXT_BUFFER/),
    ]);
  });

  it("refuses every truncation of a valid pickle", () => {
    const [body] = python(
      `import pickle\nprint(pickle.dumps({"method": "emit", "data": ["x" * 300, 2**80, 1.5, (1,)]}, protocol=4).hex())`,
    );
    for (let n = 0; n < body!.length; n++) rejection(body!.subarray(0, n));
  });

  it.each([
    ["BINUNICODE8 of 2^62 bytes", "80048d" + "0000000000000040" + "2e"],
    ["BINBYTES8 of 2^64-1 bytes", "80048e" + "ffffffffffffffff" + "2e"],
    ["BINUNICODE of 4 GiB", "800358" + "ffffffff" + "2e"],
    ["BINSTRING of a negative length", "800254" + "ffffffff" + "2e"],
    ["LONG4 of 2^31-1 bytes", "80028b" + "ffffff7f" + "2e"],
    ["a FRAME longer than the message", "800495" + "0000010000000000" + "4e2e"],
  ])("refuses %s at once", (_name, hex) => {
    expect(rejection(Buffer.from(hex, "hex"))).toMatch(/length|integer too large|truncated/);
  });

  it("refuses a protocol newer than 5, unknown opcodes, and leftovers", () => {
    expect(rejection(Buffer.from("80064e2e", "hex"))).toMatch(/protocol 6/);
    expect(rejection(Buffer.from("8002ff2e", "hex"))).toMatch(/unknown opcode 0xff/);
    expect(rejection(Buffer.from("80024e4e2e", "hex"))).toMatch(/2 values at STOP/);
    expect(rejection(Buffer.from("80024e2e00", "hex"))).toMatch(/trailing bytes/);
    expect(rejection(Buffer.from("800228", "hex"))).toMatch(/truncated/);
  });

  it("bounds depth, cycles and memo fan-out when the value is converted", () => {
    const deep = python(
      `import pickle\nv = []\nfor _ in range(150): v = [v]\nprint(pickle.dumps(v, protocol=4).hex())`,
    );
    const cyclic = python(
      `import pickle\nv = []\nv.append(v)\nprint(pickle.dumps(v, protocol=2).hex())`,
    );
    // 40 levels of [x, x] sharing one memo entry each: 2^40 values once expanded.
    const laughs = python(
      `import pickle\nv = ["x"]\nfor _ in range(40): v = [v, v]\nprint(pickle.dumps(v, protocol=4).hex())`,
    );
    expect(laughs[0]!.length).toBeLessThan(1000);
    for (const body of [...deep, ...cyclic, ...laughs]) {
      const value = readPickle(body, LIMITS);
      expect(() => pythonToJavaScript(value, VALUE_LIMITS)).toThrow(ValueRejected);
    }
  });

  it("refuses a message larger than maxBytes before reading it", () => {
    expect(() => readPickle(Buffer.alloc(2000, 0x4e), { maxBytes: 1000 })).toThrow(/exceeds 1000/);
  });

  it("survives random mutations of real pickles with a rejection or a plain value, never anything else", () => {
    const seeds = python(`import pickle
v = {"method": "emit", "event": "e", "data": ([1, 2.5, "s", b"b", None, True], {"k": (1,)}), "room": None}
for p in range(6): print(pickle.dumps(v, protocol=p).hex())`);
    const mutated = fc.tuple(
      fc.constantFrom(...seeds),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
        minLength: 1,
        maxLength: 6,
      }),
      fc.nat(),
    );
    fc.assert(
      fc.property(mutated, ([seed, edits, cut]) => {
        const body = Buffer.from(seed);
        for (const [at, byte] of edits) body[at % body.length] = byte;
        const input = body.subarray(0, (cut % (body.length + 1)) + 1);
        try {
          const value = readPickle(input, LIMITS);
          expectPlain(value, 0);
        } catch (err) {
          if (!(err instanceof PickleRejected)) throw err;
        }
      }),
      { numRuns: 5000, seed: 7 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          expectPlain(readPickle(Buffer.from(bytes), LIMITS), 0);
        } catch (err) {
          if (!(err instanceof PickleRejected)) throw err;
        }
      }),
      { numRuns: 5000, seed: 8 },
    );
  });
});

/** Only the plain Python value types can come out of the reader. */
function expectPlain(value: unknown, depth: number): void {
  if (depth > 10_000) return;
  if (value === null || ["boolean", "number", "bigint", "string"].includes(typeof value)) return;
  if (Buffer.isBuffer(value)) return;
  if (
    Array.isArray(value) ||
    value instanceof PyTuple ||
    value instanceof PyDict ||
    value instanceof PySet
  )
    return;
  throw new Error(`the reader built a ${Object.prototype.toString.call(value)}`);
}
