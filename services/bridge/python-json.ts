import { randomBytes } from "node:crypto";

/**
 * Parses JSON as Python's `json.dumps` writes it, which by default allows the non-standard
 * literals `NaN`, `Infinity` and `-Infinity` (python-socketio >= 5.14 puts its messages on the
 * queue this way). Standard JSON takes `JSON.parse`'s fast path; only text that fails there is
 * scanned, and the three literals outside strings are swapped for sentinel strings that a reviver
 * turns back into numbers. The sentinel carries a random per-process nonce so that no string in a
 * message can be mistaken for one. Throws `SyntaxError` like `JSON.parse`.
 */
export function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    if (!/NaN|Infinity/.test(text)) throw err;
  }
  return JSON.parse(replaceSpecialLiterals(text), revive);
}

const NONCE = randomBytes(12).toString("hex");
const SENTINELS: Record<string, number> = {
  [`\u0000${NONCE}:NaN`]: Number.NaN,
  [`\u0000${NONCE}:Infinity`]: Number.POSITIVE_INFINITY,
  [`\u0000${NONCE}:-Infinity`]: Number.NEGATIVE_INFINITY,
};

function revive(_key: string, value: unknown): unknown {
  if (typeof value === "string" && value.charCodeAt(0) === 0) {
    const special = SENTINELS[value];
    if (special !== undefined) return special;
  }
  return value;
}

function replaceSpecialLiterals(text: string): string {
  let out = "";
  let from = 0;
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip a string literal, escapes included: literals inside strings stay text.
      i++;
      while (i < text.length && text.charCodeAt(i) !== 0x22)
        i += text.charCodeAt(i) === 0x5c ? 2 : 1;
      i++;
      continue;
    }
    const literal = text.startsWith("NaN", i)
      ? "NaN"
      : text.startsWith("Infinity", i)
        ? "Infinity"
        : text.startsWith("-Infinity", i)
          ? "-Infinity"
          : undefined;
    if (literal === undefined) {
      i++;
      continue;
    }
    out += `${text.slice(from, i)}"\\u0000${NONCE}:${literal}"`;
    i += literal.length;
    from = i;
  }
  return out + text.slice(from);
}
