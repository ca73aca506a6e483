/**
 * Python values as the safe pickle reader builds them, before they become the JavaScript values
 * that Socket.IO sends. Only plain data exists here: no class, no callable, no reference to a
 * module can be represented, which is what makes the reader safe by construction.
 */

/** A Python tuple: several emit arguments at the top of `data`, a list anywhere else. */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

/** A Python dict. Keys keep Python's equality (`1 == True`), values the last one set. */
export class PyDict {
  readonly entries = new Map<string, { key: PyKey; value: PyValue }>();

  set(key: PyValue, value: PyValue): void {
    const hash = hashKey(key);
    this.entries.set(hash, { key: key as PyKey, value });
  }

  get(name: string): PyValue | undefined {
    return this.entries.get(`s:${name}`)?.value;
  }
}

/** A Python set or frozenset. Socket.IO cannot send one (Python's json refuses it too). */
export class PySet {
  readonly items = new Map<string, PyKey>();
  constructor(readonly frozen: boolean) {}

  add(item: PyValue): void {
    this.items.set(hashKey(item), item as PyKey);
  }
}

/** The key types Python's json module can write as object keys. */
export type PyKey = null | boolean | number | bigint | string;

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Buffer
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet;

/** Thrown for a key that is unhashable in Python or that JSON cannot carry. */
export class UnsupportedKeyError extends Error {}

function hashKey(key: PyValue): string {
  if (key === null) return "N";
  if (key === true) return "i:1";
  if (key === false) return "i:0";
  if (typeof key === "string") return `s:${key}`;
  if (typeof key === "bigint") return `i:${key}`;
  if (typeof key === "number") return Number.isInteger(key) ? `i:${key}` : `f:${key}`;
  throw new UnsupportedKeyError(`unsupported dict key type ${pyTypeName(key)}`);
}

export function pyTypeName(value: PyValue): string {
  if (value === null) return "NoneType";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return "int or float";
  if (typeof value === "bigint") return "int";
  if (typeof value === "string") return "str";
  if (Buffer.isBuffer(value)) return "bytes";
  if (Array.isArray(value)) return "list";
  if (value instanceof PyTuple) return "tuple";
  if (value instanceof PyDict) return "dict";
  return value.frozen ? "frozenset" : "set";
}
