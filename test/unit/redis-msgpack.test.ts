import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { leanParser, type Parser } from "../../adapters/redis/classic.js";
import { encodeLikeNotepack } from "../../adapters/redis/msgpack.js";

// The official adapter's default parser, from where the adapter loads it.
const fromAdapter = createRequire(
  createRequire(import.meta.url).resolve("@socket.io/redis-adapter"),
);
const notepack = fromAdapter("notepack.io") as Parser;

const encode = (value: unknown) => encodeLikeNotepack(value, notepack.encode);

/** Values a broadcast carries, and the odd ones notepack has rules of its own for. */
const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.string(),
    fc.string({ unit: "grapheme" }),
    fc.string({ unit: "binary", maxLength: 40 }), // lone surrogates included
    fc.string({ minLength: 30, maxLength: 300 }),
    fc.integer(),
    fc.integer({ min: -(2 ** 53), max: 2 ** 53 }),
    fc.double(),
    fc.constantFrom(0, -0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33),
    fc.constantFrom(-128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 1e20, -1e20),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.date({ noInvalidDate: true }),
    fc.constant(new Uint16Array([1, 256])),
  ),
  node: fc.oneof(
    { depthSize: "small" },
    tie("leaf"),
    fc.array(tie("node"), { maxLength: 20 }),
    fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }), tie("node"), { maxKeys: 20 }),
    fc.dictionary(
      fc.string(),
      fc.oneof(
        tie("node"),
        fc.constant(() => 1),
      ),
      { maxKeys: 5 },
    ),
  ),
})).node;

describe("the Redis adapter's MessagePack encoding", () => {
  it("writes the bytes of the official adapter's parser (notepack.io) for any value", () => {
    fc.assert(
      fc.property(value, (v) => {
        expect(encode(v).equals(notepack.encode(v))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("writes a broadcast as the official adapter does, and notepack reads it back", () => {
    const broadcast = [
      "Ab12Cd",
      { type: 2, data: ["message", { text: "hi", sentAt: 1732790000123.5, n: 300 }], nsp: "/" },
      { rooms: ["room:1"], except: ["sid-1"], flags: {} },
    ];
    const bytes = encode(broadcast);
    expect(bytes.equals(notepack.encode(broadcast))).toBe(true);
    expect(notepack.decode(bytes)).toEqual(broadcast);
  });

  it("encodes large values, beyond its scratch buffer, and small ones after them", () => {
    const big = {
      data: "x".repeat(200_000),
      list: Array.from({ length: 70_000 }, (_, i) => i),
      map: Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, i])),
      map16: Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, i])),
    };
    expect(encode(big).equals(notepack.encode(big))).toBe(true);
    expect(encode(["a", 1]).equals(notepack.encode(["a", 1]))).toBe(true);
  });

  it("throws where the official parser throws (a function, a bigint)", () => {
    expect(() => encode(() => 1)).toThrow();
    expect(() => encode([1n])).toThrow();
  });

  it("keeps a parser whose encoding differs (not notepack's)", () => {
    const other: Parser = { encode: (v) => Buffer.from(JSON.stringify(v)), decode: (b) => b };
    expect(leanParser(other, "uid")).toBe(other);
    const lean = leanParser(notepack, "uid");
    expect(lean).not.toBe(notepack);
    expect(lean.encode([1, "a"]).equals(notepack.encode([1, "a"]))).toBe(true);
  });
});
