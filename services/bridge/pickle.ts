import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { PyDict, PySet, PyTuple, type PyValue, UnsupportedKeyError } from "./python-values.js";

/**
 * A pickle reader that only builds plain data. python-socketio up to 5.13 (Flask-SocketIO on
 * Debian 12 among them) pickles every message it puts on the queue, and unpickling with Python's
 * own reader runs whatever the pickle names: that is CVE-2025-61765. This reader implements the
 * opcodes of protocols 0-5 that make None, bools, ints, floats, str, bytes, lists, tuples, dicts
 * and sets, and the stack and memo bookkeeping around them. Every opcode that imports a name,
 * calls something or refers outside the pickle (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST, OBJ,
 * NEWOBJ, NEWOBJ_EX, PERSID, BINPERSID, EXT1/2/4, NEXT_BUFFER, READONLY_BUFFER) rejects the whole
 * message before anything of it is used: there is no code path here that could evaluate anything.
 *
 * Size is bounded by `maxBytes` (checked before parsing) and every declared length is checked
 * against what is left of the message, so a pickle that claims a 2^63-byte string is refused at
 * once. Depth and item counts are bounded where the value is turned into JavaScript
 * (`toJavaScript`), which also catches the cycles and shared references the memo can build.
 */

export interface PickleLimits {
  /** Largest pickle accepted, in bytes. */
  maxBytes: number;
  /** Largest integer accepted, in bytes of its two's-complement form (LONG1/LONG4/text). */
  maxIntBytes?: number;
}

/** Why a pickle was refused: one stable reason string, for logs and tests. */
export class PickleRejected extends SwitchboardError {
  constructor(readonly reason: string) {
    super(ErrorCode.DECODE, `pickle rejected: ${reason}`, { details: { reason } });
  }
}

/** Opcodes that import, call or reach outside the data; any of them rejects the message. */
const FORBIDDEN: Record<number, string> = {
  99: "GLOBAL",
  147: "STACK_GLOBAL",
  82: "REDUCE",
  98: "BUILD",
  105: "INST",
  111: "OBJ",
  129: "NEWOBJ",
  146: "NEWOBJ_EX",
  80: "PERSID",
  81: "BINPERSID",
  130: "EXT1",
  131: "EXT2",
  132: "EXT4",
  151: "NEXT_BUFFER",
  152: "READONLY_BUFFER",
};

const MARK = Symbol("mark");
type Slot = PyValue | typeof MARK;

const HIGHEST_PROTOCOL = 5;

/** True when `body` starts like a pickle of protocol 2 or later (all Python 3 picklers). */
export function looksLikeBinaryPickle(body: Uint8Array): boolean {
  return body.length >= 2 && body[0] === 0x80 && body[1]! <= HIGHEST_PROTOCOL;
}

/** Parses `body` as a pickle of plain data, or throws `PickleRejected` with the reason. */
export function readPickle(body: Buffer, limits: PickleLimits): PyValue {
  if (body.length > limits.maxBytes) {
    throw new PickleRejected(`message of ${body.length} bytes exceeds ${limits.maxBytes}`);
  }
  return new Reader(body, limits.maxIntBytes ?? 64).run();
}

class Reader {
  private pos = 0;
  private readonly stack: Slot[] = [];
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, PyValue>();

  constructor(
    private readonly buf: Buffer,
    private readonly maxIntBytes: number,
  ) {}

  run(): PyValue {
    try {
      return this.loop();
    } catch (err) {
      if (err instanceof PickleRejected) throw err;
      if (err instanceof UnsupportedKeyError) throw new PickleRejected(err.message);
      throw new PickleRejected(`malformed: ${(err as Error).message}`);
    }
  }

  private loop(): PyValue {
    for (;;) {
      const at = this.pos;
      const op = this.byte();
      const forbidden = FORBIDDEN[op];
      if (forbidden !== undefined)
        throw new PickleRejected(`forbidden opcode ${forbidden} at ${at}`);
      switch (op) {
        case 0x80: {
          // PROTO
          const version = this.byte();
          if (version > HIGHEST_PROTOCOL)
            throw new PickleRejected(`unsupported protocol ${version}`);
          break;
        }
        case 0x95: // FRAME: a length prefix for buffering; the data follows inline.
          this.length(8);
          break;
        case 0x2e: // STOP
          return this.stop();
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          this.stack.push(MARK);
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.top());
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x49: // INT (text): "01"/"00" are True/False in protocol 0
          this.push(this.textInt(this.line()));
          break;
        case 0x4a: // BININT
          this.push(this.take(4).readInt32LE(0));
          break;
        case 0x4b: // BININT1
          this.push(this.byte());
          break;
        case 0x4d: // BININT2
          this.push(this.take(2).readUInt16LE(0));
          break;
        case 0x4c: // LONG (text, optional trailing L)
          this.push(this.textLong(this.line()));
          break;
        case 0x8a: // LONG1
          this.push(this.binLong(this.byte()));
          break;
        case 0x8b: // LONG4
          this.push(this.binLong(this.take(4).readInt32LE(0)));
          break;
        case 0x46: // FLOAT (text repr)
          this.push(textFloat(this.line()));
          break;
        case 0x47: // BINFLOAT
          this.push(this.take(8).readDoubleBE(0));
          break;
        case 0x53: // STRING: a quoted Python 2 str literal; Python 3 decodes it as ASCII
          this.push(ascii(unquote(this.line())));
          break;
        case 0x54: // BINSTRING
          this.push(ascii(this.take(this.length(4, true))));
          break;
        case 0x55: // SHORT_BINSTRING
          this.push(ascii(this.take(this.byte())));
          break;
        case 0x56: // UNICODE (raw-unicode-escape line)
          this.push(rawUnicodeEscape(this.line()));
          break;
        case 0x58: // BINUNICODE
          this.push(utf8(this.take(this.length(4))));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(utf8(this.take(this.byte())));
          break;
        case 0x8d: // BINUNICODE8
          this.push(utf8(this.take(this.length(8))));
          break;
        case 0x42: // BINBYTES
          this.push(Buffer.from(this.take(this.length(4))));
          break;
        case 0x43: // SHORT_BINBYTES
          this.push(Buffer.from(this.take(this.byte())));
          break;
        case 0x8e: // BINBYTES8
        case 0x96: // BYTEARRAY8
          this.push(Buffer.from(this.take(this.length(8))));
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x61: {
          // APPEND
          const item = this.pop();
          this.list(this.top()).push(item);
          break;
        }
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.list(this.top()).push(...items);
          break;
        }
        case 0x29: // EMPTY_TUPLE
          this.push(new PyTuple([]));
          break;
        case 0x74: // TUPLE
          this.push(new PyTuple(this.popMark()));
          break;
        case 0x85: // TUPLE1
          this.push(new PyTuple(this.popN(1)));
          break;
        case 0x86: // TUPLE2
          this.push(new PyTuple(this.popN(2)));
          break;
        case 0x87: // TUPLE3
          this.push(new PyTuple(this.popN(3)));
          break;
        case 0x7d: // EMPTY_DICT
          this.push(new PyDict());
          break;
        case 0x64: {
          // DICT
          const items = this.popMark();
          const dict = new PyDict();
          this.setItems(dict, items);
          this.push(dict);
          break;
        }
        case 0x73: {
          // SETITEM
          const value = this.pop();
          const key = this.pop();
          this.dict(this.top()).set(key, value);
          break;
        }
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.dict(this.top()), items);
          break;
        }
        case 0x8f: // EMPTY_SET
          this.push(new PySet(false));
          break;
        case 0x90: {
          // ADDITEMS
          const items = this.popMark();
          const set = this.top();
          if (!(set instanceof PySet) || set.frozen)
            throw new PickleRejected("ADDITEMS on a non-set");
          for (const item of items) set.add(item);
          break;
        }
        case 0x91: {
          // FROZENSET
          const set = new PySet(true);
          for (const item of this.popMark()) set.add(item);
          this.push(set);
          break;
        }
        case 0x70: // PUT (text index)
          this.memo.set(this.textIndex(this.line()), this.top());
          break;
        case 0x71: // BINPUT
          this.memo.set(this.byte(), this.top());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.take(4).readUInt32LE(0), this.top());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.top());
          break;
        case 0x67: // GET (text index)
          this.push(this.recall(this.textIndex(this.line())));
          break;
        case 0x68: // BINGET
          this.push(this.recall(this.byte()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.recall(this.take(4).readUInt32LE(0)));
          break;
        default:
          throw new PickleRejected(`unknown opcode 0x${op.toString(16).padStart(2, "0")} at ${at}`);
      }
    }
  }

  private stop(): PyValue {
    if (this.marks.length > 0) throw new PickleRejected("unclosed MARK at STOP");
    if (this.stack.length !== 1) throw new PickleRejected(`${this.stack.length} values at STOP`);
    if (this.pos !== this.buf.length) throw new PickleRejected("trailing bytes after STOP");
    return this.stack[0] as PyValue;
  }

  private byte(): number {
    if (this.pos >= this.buf.length) throw new PickleRejected("truncated");
    return this.buf[this.pos++]!;
  }

  private take(n: number): Buffer {
    if (n < 0 || n > this.buf.length - this.pos) {
      throw new PickleRejected(
        n > this.buf.length - this.pos
          ? "truncated or declared length exceeds message"
          : "negative length",
      );
    }
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** A declared length, refused at once when it is more than what is left of the message. */
  private length(width: 4 | 8, signed = false): number {
    const raw = this.take(width);
    const n =
      width === 4
        ? signed
          ? raw.readInt32LE(0)
          : raw.readUInt32LE(0)
        : Number(raw.readBigUInt64LE(0) > BigInt(this.buf.length) ? -1 : raw.readBigUInt64LE(0));
    if (n < 0 || n > this.buf.length - this.pos) {
      throw new PickleRejected("declared length exceeds message");
    }
    return n;
  }

  private line(): string {
    const end = this.buf.indexOf(0x0a, this.pos);
    if (end < 0) throw new PickleRejected("truncated: missing newline");
    const text = this.buf.toString("latin1", this.pos, end);
    this.pos = end + 1;
    return text;
  }

  private push(value: Slot): void {
    this.stack.push(value);
  }

  private pop(): PyValue {
    const value = this.stack.pop();
    if (value === undefined) throw new PickleRejected("stack underflow");
    if (value === MARK) throw new PickleRejected("MARK where a value was expected");
    return value;
  }

  private top(): PyValue {
    const value = this.stack.at(-1);
    if (value === undefined) throw new PickleRejected("stack underflow");
    if (value === MARK) throw new PickleRejected("MARK where a value was expected");
    return value;
  }

  private popN(n: number): PyValue[] {
    const items: PyValue[] = [];
    for (let i = 0; i < n; i++) items.unshift(this.pop());
    return items;
  }

  private popMark(): PyValue[] {
    const at = this.marks.pop();
    if (at === undefined) throw new PickleRejected("no MARK to pop to");
    const items = this.stack.splice(at);
    items.shift(); // the MARK itself
    return items as PyValue[];
  }

  private list(value: PyValue): PyValue[] {
    if (!Array.isArray(value)) throw new PickleRejected("APPEND on a non-list");
    return value;
  }

  private dict(value: PyValue): PyDict {
    if (!(value instanceof PyDict)) throw new PickleRejected("SETITEM on a non-dict");
    return value;
  }

  private setItems(dict: PyDict, items: PyValue[]): void {
    if (items.length % 2 !== 0) throw new PickleRejected("odd number of dict items");
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
  }

  private recall(index: number): PyValue {
    const value = this.memo.get(index);
    if (value === undefined) throw new PickleRejected(`memo ${index} not set`);
    return value;
  }

  private textIndex(text: string): number {
    if (!/^\d{1,10}$/.test(text)) throw new PickleRejected("bad memo index");
    return Number(text);
  }

  private textInt(text: string): number | bigint | boolean {
    if (text === "01") return true;
    if (text === "00") return false;
    return this.textLong(text);
  }

  private textLong(text: string): number | bigint {
    const digits = text.endsWith("L") ? text.slice(0, -1) : text;
    if (!/^[+-]?\d+$/.test(digits)) throw new PickleRejected("bad integer literal");
    if (digits.length > this.maxIntBytes * 2.5) throw new PickleRejected("integer too large");
    return narrow(BigInt(digits));
  }

  private binLong(size: number): number | bigint {
    if (size < 0) throw new PickleRejected("negative length");
    if (size > this.maxIntBytes) throw new PickleRejected("integer too large");
    const bytes = this.take(size);
    if (size === 0) return 0;
    let value = 0n;
    for (let i = size - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    if (bytes[size - 1]! & 0x80) value -= 1n << BigInt(size * 8);
    return narrow(value);
  }
}

/** Ints that fit a double exactly become numbers; larger ones stay bigint until conversion. */
function narrow(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value;
}

function textFloat(text: string): number {
  const t = text.trim().toLowerCase();
  if (t === "nan") return Number.NaN;
  if (t === "inf" || t === "+inf") return Number.POSITIVE_INFINITY;
  if (t === "-inf") return Number.NEGATIVE_INFINITY;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/.test(t))
    throw new PickleRejected("bad float literal");
  return Number(t);
}

const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

function utf8(bytes: Uint8Array): string {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    throw new PickleRejected("invalid UTF-8 in str");
  }
}

/** Python 3 reads Python 2 `str` pickles as ASCII by default; anything else fails there too. */
function ascii(bytes: Uint8Array | string): string {
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("latin1");
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the ASCII range is the point
  if (!/^[\x00-\x7f]*$/.test(text)) throw new PickleRejected("non-ASCII bytes in a Python 2 str");
  return text;
}

/** The body of a protocol-0 STRING line: a quoted literal with backslash escapes. */
function unquote(line: string): string {
  const quote = line[0];
  if ((quote !== "'" && quote !== '"') || line.length < 2 || line.at(-1) !== quote) {
    throw new PickleRejected("STRING is not quoted");
  }
  const body = line.slice(1, -1);
  const simple: Record<string, string> = {
    "\\": "\\",
    "'": "'",
    '"': '"',
    n: "\n",
    r: "\r",
    t: "\t",
    a: "\x07",
    b: "\b",
    f: "\f",
    v: "\v",
  };
  let out = "";
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== "\\") {
      out += c;
      continue;
    }
    const next = body[++i];
    if (next === undefined) throw new PickleRejected("bad escape in STRING");
    if (simple[next] !== undefined) out += simple[next];
    else if (next === "x" && /^[0-9a-fA-F]{2}$/.test(body.slice(i + 1, i + 3))) {
      out += String.fromCharCode(Number.parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(next)) {
      const octal = /^[0-7]{1,3}/.exec(body.slice(i))![0];
      out += String.fromCharCode(Number.parseInt(octal, 8) & 0xff);
      i += octal.length - 1;
    } else throw new PickleRejected("bad escape in STRING");
  }
  return out;
}

/** Python's raw-unicode-escape: only \uXXXX and \UXXXXXXXX are escapes, other bytes are Latin-1. */
function rawUnicodeEscape(line: string): string {
  return line.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_m, u4: string, u8: string) => {
    const code = Number.parseInt(u4 ?? u8, 16);
    if (code > 0x10ffff) throw new PickleRejected("bad \\U escape in UNICODE");
    return String.fromCodePoint(code);
  });
}
