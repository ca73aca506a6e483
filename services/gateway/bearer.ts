import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

/**
 * Checks `Authorization: Bearer <key>` against known keys. Keys are compared as SHA-256 digests
 * in constant time, every key every time: neither content nor length leaks through timing.
 */
export function bearerCheck(keys: readonly string[]): (req: IncomingMessage) => boolean {
  const digests = keys.map(digest);
  return (req) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    if (!match?.[1]) return false;
    const presented = digest(match[1]);
    let ok = false;
    for (const known of digests) ok = timingSafeEqual(presented, known) || ok;
    return ok;
  };
}

function digest(key: string): Buffer {
  return createHash("sha256").update(key).digest();
}
