import { PyDict, PySet, PyTuple, type PyValue } from "./python-values.js";

/** Bounds on a decoded value, so that nesting, cycles and memo fan-out cannot exhaust memory. */
export interface ValueLimits {
  /** Deepest nesting of lists/dicts accepted. */
  maxDepth: number;
  /** Most values (containers and scalars together) in one message. */
  maxItems: number;
}

/** A value that cannot be turned into what Socket.IO sends; `reason` is stable for logs. */
export class ValueRejected extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

class Budget {
  private left: number;
  constructor(private readonly limits: ValueLimits) {
    this.left = limits.maxItems;
  }
  spend(depth: number): void {
    if (depth > this.limits.maxDepth) {
      throw new ValueRejected(`nesting deeper than ${this.limits.maxDepth}`);
    }
    if (--this.left < 0) throw new ValueRejected(`more than ${this.limits.maxItems} values`);
  }
}

/**
 * A Python value as Socket.IO sends it to clients, the way Python's json module would write it:
 * tuples become arrays, dict keys become strings (`1` -> "1", `True` -> "true", `None` -> "null"),
 * bytes become Buffers (binary attachments), ints past 2^53 become the nearest double (as a
 * JavaScript client parsing Python's JSON would see them). Sets are refused, as json refuses them.
 * Shared references are expanded and cycles hit the depth bound.
 */
export function pythonToJavaScript(value: PyValue, limits: ValueLimits): unknown {
  return convertPy(value, 0, new Budget(limits));
}

function convertPy(value: PyValue, depth: number, budget: Budget): unknown {
  budget.spend(depth);
  if (value === null || typeof value !== "object") {
    return typeof value === "bigint" ? Number(value) : value;
  }
  if (Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((item) => convertPy(item, depth + 1, budget));
  if (value instanceof PyTuple)
    return value.items.map((item) => convertPy(item, depth + 1, budget));
  if (value instanceof PyDict) {
    const out: Record<string, unknown> = {};
    for (const { key, value: item } of value.entries.values()) {
      setOwn(out, jsonKey(key), convertPy(item, depth + 1, budget));
    }
    return out;
  }
  if (value instanceof PySet)
    throw new ValueRejected("a set cannot be sent (Python's json refuses it too)");
  throw new ValueRejected("unsupported value");
}

function jsonKey(key: PyValue): string {
  if (key === null) return "null";
  if (key === true) return "true";
  if (key === false) return "false";
  if (typeof key === "string") return key;
  if (typeof key === "number" || typeof key === "bigint") return pythonNumberText(key);
  throw new ValueRejected("unsupported dict key");
}

function pythonNumberText(n: number | bigint): string {
  if (typeof n === "bigint") return n.toString();
  if (Number.isNaN(n)) return "NaN";
  if (n === Number.POSITIVE_INFINITY) return "Infinity";
  if (n === Number.NEGATIVE_INFINITY) return "-Infinity";
  return String(n);
}

/** Defines a key as an own property, `__proto__` included, without touching any prototype. */
export function setOwn(target: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(target, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else {
    target[key] = value;
  }
}

/**
 * Checks a value parsed from JSON against the limits and, when the message carries binary
 * attachments, puts each attachment where its `{"_placeholder": true, "num": n}` stands (the
 * Socket.IO parser's own convention, which python-socketio reuses on the queue).
 */
export function checkJsonValue(
  value: unknown,
  limits: ValueLimits,
  attachments?: readonly Buffer[],
): unknown {
  return walkJson(value, 0, new Budget(limits), attachments);
}

function walkJson(
  value: unknown,
  depth: number,
  budget: Budget,
  attachments: readonly Buffer[] | undefined,
): unknown {
  budget.spend(depth);
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      value[i] = walkJson(value[i], depth + 1, budget, attachments);
    }
    return value;
  }
  const record = value as Record<string, unknown>;
  if (attachments !== undefined && record._placeholder === true) {
    const num = record.num;
    const keys = Object.keys(record);
    if (keys.length === 2 && typeof num === "number" && Number.isInteger(num)) {
      const attachment = attachments[num];
      if (attachment === undefined)
        throw new ValueRejected(`binary placeholder ${num} has no attachment`);
      return attachment;
    }
  }
  for (const key of Object.keys(record)) {
    setOwn(record, key, walkJson(record[key], depth + 1, budget, attachments));
  }
  return record;
}
