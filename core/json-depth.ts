/**
 * Nesting depth of JSON, measured without recursion. `JSON.parse` itself copes with deep input,
 * but everything after it that walks the value recursively (encoders, `JSON.stringify`,
 * Socket.IO's binary detection) overflows the stack, so depth is checked first, on the raw text
 * where there is one. The outermost object or array is level 1; scalars add no level.
 */

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Whether JSON text nests deeper than `max` levels, in one pass and without parsing. Works on
 * UTF-8 bytes as well as on a string: brackets, quotes and backslashes are ASCII, and no byte of
 * a multi-byte UTF-8 sequence is. Text that is not JSON is measured as far as it goes (parsing
 * then rejects it).
 */
export function jsonTextExceedsDepth(json: string | Uint8Array, max: number): boolean {
  const length = json.length;
  const at = typeof json === "string" ? (i: number) => json.charCodeAt(i) : (i: number) => json[i]!;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < length; i++) {
    const c = at(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > max) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return false;
}

/**
 * Whether a value nests deeper than `max` levels of objects and arrays, walked with an explicit
 * stack. A cyclic value counts as too deep (its walk would never end).
 */
export function valueExceedsDepth(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [current, depth] = next;
    if (typeof current !== "object" || current === null) continue;
    if (depth + 1 > max) return true;
    const children = Array.isArray(current) ? current : Object.values(current);
    for (const child of children) stack.push([child, depth + 1]);
  }
  return false;
}
