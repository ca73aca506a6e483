/**
 * What a client may do with rooms, from its token's claims (`rooms`, `publish`) or the gateway's
 * defaults (AUTH_DEFAULT_ROOMS, AUTH_DEFAULT_PUBLISH).
 *
 * A pattern is an exact room name (`chat:1`) or a prefix followed by one trailing `*` (`chat:*`
 * matches `chat:1` and `chat:` itself; `*` alone matches every room). `*` anywhere else is not a
 * wildcard: room names cannot contain it, so such a pattern is refused. Rights never reach
 * `user:*` or socket-id rooms: protocol.ts refuses those before it asks.
 */

/** Room charset of rooms.ts, at most 200 chars, then an optional trailing `*`. */
const PATTERN = /^[A-Za-z0-9:_.@/-]{0,200}\*?$/;

/** Upper bound on patterns in one claim or setting: rights are checked on every join/publish. */
export const MAX_PATTERNS = 1000;

export class RoomPatterns {
  private readonly exact: ReadonlySet<string>;
  private readonly prefixes: readonly string[];
  /** The patterns as given, for logs and `whoami`. */
  readonly source: readonly string[];

  constructor(patterns: readonly string[]) {
    const exact = new Set<string>();
    const prefixes: string[] = [];
    for (const pattern of patterns) {
      if (pattern.endsWith("*")) prefixes.push(pattern.slice(0, -1));
      else exact.add(pattern);
    }
    this.exact = exact;
    // A "*" pattern (empty prefix) makes every other one redundant.
    this.prefixes = prefixes.includes("") ? [""] : prefixes;
    this.source = [...patterns];
  }

  matches(room: string): boolean {
    if (this.exact.has(room)) return true;
    for (const prefix of this.prefixes) if (room.startsWith(prefix)) return true;
    return false;
  }

  static readonly none = new RoomPatterns([]);
  static readonly all = new RoomPatterns(["*"]);
}

export const PATTERN_RULE =
  "must be room names of [A-Za-z0-9:_.@/-], each optionally ending in one *";

export function isValidPattern(pattern: unknown): pattern is string {
  return typeof pattern === "string" && pattern.length > 0 && PATTERN.test(pattern);
}

/**
 * Checks a list of patterns (a token claim or a setting). Returns the reason it cannot be used,
 * or the compiled patterns.
 */
export function parsePatterns(value: unknown): RoomPatterns | string {
  if (!Array.isArray(value)) return "must be an array of room patterns";
  if (value.length > MAX_PATTERNS) return `must hold at most ${MAX_PATTERNS} patterns`;
  for (const [index, pattern] of value.entries()) {
    if (!isValidPattern(pattern)) {
      return `[${index}]: ${PATTERN_RULE}`;
    }
  }
  return new RoomPatterns(value as string[]);
}

export interface Rights {
  /** Rooms the client may join. */
  readonly join: RoomPatterns;
  /** Rooms the client may publish to. */
  readonly publish: RoomPatterns;
}

export const ALL_RIGHTS: Rights = { join: RoomPatterns.all, publish: RoomPatterns.all };
