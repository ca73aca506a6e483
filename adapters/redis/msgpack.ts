/**
 * The MessagePack encoding of `@socket.io/redis-adapter`'s default parser (notepack.io 3), byte
 * for byte, written into one reused scratch buffer: per message it allocates the returned Buffer
 * only. notepack builds an array of every header byte and an object per string, key and float
 * before it writes (≈ 2.6 KB of garbage for a client publish of the bench's 100-byte payload,
 * the largest single share of a publishing gateway's allocations: docs/BENCHMARKS.md).
 *
 * It covers what broadcasts carry: strings (well-formed UTF-16), numbers, booleans, null,
 * undefined, plain arrays and objects, Buffers. Anything else in the value (a Date, another
 * typed array, an ArrayBuffer, an object with `toJSON`, a class instance, a bigint, a string
 * with a lone surrogate, where notepack has its own rules) makes `encode` hand the whole value to
 * the fallback (notepack itself), so the bytes are notepack's in every case.
 */

/** notepack's threshold between its own UTF-8 loop and Buffer's (MICRO_OPT_LEN). */
const MICRO_OPT_LEN = 32;
/** Scratch buffers larger than this are dropped after the message that needed them. */
const KEEP_BYTES = 64 * 1024;

let scratch = Buffer.allocUnsafeSlow(8 * 1024);
let pos = 0;
/** Set when the value holds something only the fallback encodes as notepack does. */
let unsupported = false;

function reserve(bytes: number): void {
  if (pos + bytes <= scratch.length) return;
  let size = scratch.length * 2;
  while (size < pos + bytes) size *= 2;
  const grown = Buffer.allocUnsafeSlow(size);
  scratch.copy(grown, 0, 0, pos);
  scratch = grown;
}

/** notepack's UTF-8 length of a short string (its `utf8Length`). */
function utf8Length(str: string): number {
  let length = 0;
  for (let i = 0, l = str.length; i < l; i++) {
    const c = str.charCodeAt(i);
    if (c < 0x80) length += 1;
    else if (c < 0x800) length += 2;
    else if (c < 0xd800 || c >= 0xe000) length += 3;
    else {
      i++;
      length += 4;
    }
  }
  return length;
}

/** notepack's UTF-8 writer for short strings (its `utf8Write`); `scratch` has the room. */
function utf8Write(str: string, offset: number): void {
  const buf = scratch;
  for (let i = 0, l = str.length; i < l; i++) {
    let c = str.charCodeAt(i);
    if (c < 0x80) {
      buf[offset++] = c;
    } else if (c < 0x800) {
      buf[offset++] = 0xc0 | (c >> 6);
      buf[offset++] = 0x80 | (c & 0x3f);
    } else if (c < 0xd800 || c >= 0xe000) {
      buf[offset++] = 0xe0 | (c >> 12);
      buf[offset++] = 0x80 | ((c >> 6) & 0x3f);
      buf[offset++] = 0x80 | (c & 0x3f);
    } else {
      i++;
      c = 0x10000 + (((c & 0x3ff) << 10) | (str.charCodeAt(i) & 0x3ff));
      buf[offset++] = 0xf0 | (c >> 18);
      buf[offset++] = 0x80 | ((c >> 12) & 0x3f);
      buf[offset++] = 0x80 | ((c >> 6) & 0x3f);
      buf[offset++] = 0x80 | (c & 0x3f);
    }
  }
}

const isWellFormed = (str: string) =>
  (str as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * Writes a string as notepack does: its own UTF-8 loop to count up to 32 UTF-16 units and to
 * write up to 32 bytes, Buffer's beyond (the two agree on well-formed strings, and on a value
 * with a lone surrogate we take notepack's exact choices). A map key is written by notepack's
 * key cache, always with its own loop: a non-ASCII key must be well-formed for the bytes to be
 * the same, else the whole value goes to notepack.
 */
function writeString(value: string, key: boolean): void {
  const length = value.length > MICRO_OPT_LEN ? Buffer.byteLength(value) : utf8Length(value);
  if (key && length !== value.length && !isWellFormed(value)) {
    unsupported = true;
    return;
  }
  reserve(5 + length);
  const buf = scratch;
  if (length < 0x20) {
    buf[pos++] = length | 0xa0;
  } else if (length < 0x100) {
    buf[pos++] = 0xd9;
    buf[pos++] = length;
  } else if (length < 0x10000) {
    buf[pos++] = 0xda;
    buf[pos++] = length >> 8;
    buf[pos++] = length;
  } else {
    buf[pos++] = 0xdb;
    buf[pos++] = length >> 24;
    buf[pos++] = length >> 16;
    buf[pos++] = length >> 8;
    buf[pos++] = length;
  }
  if (length > MICRO_OPT_LEN) buf.write(value, pos, length, "utf8");
  else utf8Write(value, pos);
  pos += length;
}

function writeNumber(value: number): void {
  reserve(9);
  const buf = scratch;
  if (Math.floor(value) !== value || !Number.isFinite(value)) {
    buf[pos++] = 0xcb;
    buf.writeDoubleBE(value, pos);
    pos += 8;
    return;
  }
  // The integer formats as notepack writes them (a byte takes the low 8 bits of its value).
  if (value >= 0) {
    if (value < 0x80) {
      buf[pos++] = value;
    } else if (value < 0x100) {
      buf[pos++] = 0xcc;
      buf[pos++] = value;
    } else if (value < 0x10000) {
      buf[pos++] = 0xcd;
      buf[pos++] = value >> 8;
      buf[pos++] = value;
    } else if (value < 0x100000000) {
      buf[pos++] = 0xce;
      buf[pos++] = value >> 24;
      buf[pos++] = value >> 16;
      buf[pos++] = value >> 8;
      buf[pos++] = value;
    } else {
      const hi = (value / 2 ** 32) >> 0;
      const lo = value >>> 0;
      buf[pos++] = 0xcf;
      write64(hi, lo);
    }
  } else if (value >= -0x20) {
    buf[pos++] = value;
  } else if (value >= -0x80) {
    buf[pos++] = 0xd0;
    buf[pos++] = value;
  } else if (value >= -0x8000) {
    buf[pos++] = 0xd1;
    buf[pos++] = value >> 8;
    buf[pos++] = value;
  } else if (value >= -0x80000000) {
    buf[pos++] = 0xd2;
    buf[pos++] = value >> 24;
    buf[pos++] = value >> 16;
    buf[pos++] = value >> 8;
    buf[pos++] = value;
  } else {
    const hi = Math.floor(value / 2 ** 32);
    const lo = value >>> 0;
    buf[pos++] = 0xd3;
    write64(hi, lo);
  }
}

function write64(hi: number, lo: number): void {
  const buf = scratch;
  buf[pos++] = hi >> 24;
  buf[pos++] = hi >> 16;
  buf[pos++] = hi >> 8;
  buf[pos++] = hi;
  buf[pos++] = lo >> 24;
  buf[pos++] = lo >> 16;
  buf[pos++] = lo >> 8;
  buf[pos++] = lo;
}

/** Array, map and bin headers: `short` is the fix format's base (or -1: none), then 16/32. */
function writeLength(length: number, short: number, max: number, f16: number, f32: number): void {
  reserve(5);
  const buf = scratch;
  if (short >= 0 && length < max) {
    buf[pos++] = short | length;
  } else if (short < 0 && length < 0x100) {
    buf[pos++] = f16 - 1; // bin 8 (0xc4) precedes bin 16
    buf[pos++] = length;
  } else if (length < 0x10000) {
    buf[pos++] = f16;
    buf[pos++] = length >> 8;
    buf[pos++] = length;
  } else {
    buf[pos++] = f32;
    buf[pos++] = length >> 24;
    buf[pos++] = length >> 16;
    buf[pos++] = length >> 8;
    buf[pos++] = length;
  }
}

/** notepack skips a map entry whose value is undefined or a function. */
const skipped = (v: unknown) => v === undefined || typeof v === "function";

function writeValue(value: unknown): void {
  if (unsupported) return;
  switch (typeof value) {
    case "string":
      return writeString(value, false);
    case "number":
      return writeNumber(value);
    case "boolean":
      reserve(1);
      scratch[pos++] = value ? 0xc3 : 0xc2;
      return;
    case "undefined":
      reserve(1);
      scratch[pos++] = 0xc0;
      return;
    case "object":
      break;
    default:
      unsupported = true;
      return;
  }
  if (value === null) {
    reserve(1);
    scratch[pos++] = 0xc0;
    return;
  }
  if (Array.isArray(value)) {
    if (value.length >= 0x100000000) {
      unsupported = true;
      return;
    }
    writeLength(value.length, 0x90, 0x10, 0xdc, 0xdd);
    for (let i = 0; i < value.length; i++) writeValue(value[i]);
    return;
  }
  if (Buffer.isBuffer(value)) {
    if (value.length >= 0x100000000) {
      unsupported = true;
      return;
    }
    writeLength(value.length, -1, 0, 0xc5, 0xc6);
    reserve(value.length);
    value.copy(scratch, pos);
    pos += value.length;
    return;
  }
  const proto = Object.getPrototypeOf(value);
  // Dates, other typed arrays, ArrayBuffers, class instances and objects with toJSON: notepack's.
  if (
    (proto !== Object.prototype && proto !== null) ||
    typeof (value as { toJSON?: unknown }).toJSON === "function"
  ) {
    unsupported = true;
    return;
  }
  const object = value as Record<string, unknown>;
  // One pass: a fixmap header (fewer than 16 entries, as almost always), moved back by two bytes
  // for a map 16 / four for a map 32 header when there were more. Object.keys' order is for-in's
  // for own keys; for-in walks the enum cache without making an array.
  reserve(1);
  const header = pos++;
  let count = 0;
  for (const key in object) {
    if (!Object.hasOwn(object, key)) continue;
    const item = object[key];
    if (skipped(item)) continue;
    count++;
    writeString(key, true);
    writeValue(item);
  }
  if (count < 0x10) {
    scratch[header] = 0x80 | count;
    return;
  }
  const extra = count < 0x10000 ? 2 : 4;
  reserve(extra);
  scratch.copyWithin(header + 1 + extra, header + 1, pos);
  pos += extra;
  const end = pos;
  pos = header;
  writeLength(count, 0x80, 0x10, 0xde, 0xdf);
  pos = end;
}

/**
 * `value` encoded as notepack.io 3 encodes it; values outside the covered types go to
 * `fallback` (notepack's `encode`), whole.
 */
export function encodeLikeNotepack(value: unknown, fallback: (value: unknown) => Buffer): Buffer {
  pos = 0;
  unsupported = false;
  try {
    writeValue(value);
  } catch {
    // A getter that throws, a value mutated while encoded: notepack's own behaviour applies.
    unsupported = true;
  }
  const length = pos;
  pos = 0;
  if (scratch.length > KEEP_BYTES) {
    const encoded = unsupported ? undefined : Buffer.from(scratch.subarray(0, length));
    scratch = Buffer.allocUnsafeSlow(8 * 1024);
    if (encoded !== undefined) return encoded;
  }
  if (unsupported) return fallback(value);
  const encoded = Buffer.allocUnsafe(length);
  scratch.copy(encoded, 0, 0, length);
  return encoded;
}
