import fc from "fast-check";
import { SignJWT } from "jose";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { valueExceedsDepth } from "../../core/json-depth.js";
import { isValidRoomName } from "../../core/names.js";
import { checkPublishCommand, MAX_COMMAND_DEPTH } from "../../core/publish-command.js";
import { createAuthenticator } from "../../services/gateway/auth.js";
import { isValidPattern, parsePatterns, RoomPatterns } from "../../services/gateway/rights.js";
import { checkClientRoom } from "../../services/gateway/rooms.js";

/**
 * Properties of the security rules over generated inputs: room names, token claims and publish
 * payloads. Each property states what must hold for every input, not for a few examples.
 */

const ROOM_CHARS = "abcXYZ019:_.@/-";
const roomChar = fc.constantFrom(...ROOM_CHARS.split(""));
const room = fc.string({ unit: roomChar, minLength: 1, maxLength: 40 });
/** Any string, with the characters that matter to patterns and routing keys made likely. */
const anyText = fc.string({
  unit: fc.oneof(
    roomChar,
    fc.constantFrom("*", "#", " ", "\u0000", "é", "\u{1F511}"),
    fc.string({ maxLength: 1 }),
  ),
  maxLength: 60,
});

describe("room names and patterns", () => {
  it("a client may only name valid rooms, and never user:* nor socket-id-shaped ones", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyText,
          room,
          room.map((r) => `user:${r}`),
        ),
        (name) => {
          const verdict = checkClientRoom(name);
          if (!isValidRoomName(name)) expect(verdict).toBe("invalid_room");
          if (name.startsWith("user:") && isValidRoomName(name)) expect(verdict).toBe("forbidden");
          if (verdict === "ok") {
            expect(name).toMatch(/^[A-Za-z0-9:_.@/-]{1,200}$/);
            expect(name.startsWith("user:")).toBe(false);
          }
        },
      ),
    );
  });

  it("a pattern matches exactly its name, or the names starting with its prefix", () => {
    fc.assert(
      fc.property(room, fc.boolean(), room, (base, wildcard, candidate) => {
        const pattern = wildcard ? `${base}*` : base;
        const patterns = new RoomPatterns([pattern]);
        const expected = wildcard ? candidate.startsWith(base) : candidate === base;
        expect(patterns.matches(candidate)).toBe(expected);
      }),
    );
  });

  it("no text with * or # elsewhere than one trailing * is accepted as a pattern", () => {
    fc.assert(
      fc.property(anyText, (text) => {
        const body = text.endsWith("*") ? text.slice(0, -1) : text;
        if (/[^A-Za-z0-9:_.@/-]/.test(body) || text.length === 0) {
          expect(isValidPattern(text)).toBe(false);
        }
      }),
    );
  });
});

describe("token claims", () => {
  const secret = "p".repeat(40);
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(secret));

  it("a signed token is let in exactly when its claims are usable, and gets only what they say", async () => {
    const auth = await createAuthenticator(
      { jwtSecret: secret, clockSkewSec: 0 },
      pino({ level: "silent" }),
    );
    const claimValue = fc.oneof(
      fc.array(
        fc.oneof(
          room,
          room.map((r) => `${r}*`),
        ),
        { maxLength: 5 },
      ),
      fc.array(anyText, { maxLength: 3 }),
      anyText,
      fc.integer(),
      fc.constant(undefined),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.option(fc.oneof(room, anyText), { nil: undefined }),
        claimValue,
        claimValue,
        room,
        async (sub, rooms, publish, probe) => {
          const claims = { exp: Math.floor(Date.now() / 1000) + 60, sub, rooms, publish };
          const result = await auth.authenticate(await sign(claims));
          const subOk = sub === undefined || isValidRoomName(`user:${sub}`);
          const roomsOk = rooms === undefined || typeof parsePatterns(rooms) !== "string";
          const publishOk = publish === undefined || typeof parsePatterns(publish) !== "string";
          expect(result.ok).toBe(subOk && roomsOk && publishOk);
          if (!result.ok) return;
          const allowed = (list: unknown) =>
            Array.isArray(list) &&
            list.some((p: string) =>
              p.endsWith("*") ? probe.startsWith(p.slice(0, -1)) : p === probe,
            );
          expect(result.identity.rights.join.matches(probe)).toBe(allowed(rooms));
          expect(result.identity.rights.publish.matches(probe)).toBe(allowed(publish));
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("publish payloads", () => {
  /** JSON values with nesting up to `maxDepth`, objects and arrays mixed. */
  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null)),
      fc.array(tie("value"), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 5 }), tie("value"), { maxKeys: 3 }),
    ),
  })).value;
  const deep = fc.tuple(fc.integer({ min: 1, max: 80 }), fc.boolean()).map(([levels, objects]) => {
    let value: unknown = 1;
    for (let i = 0; i < levels; i++) value = objects ? { k: value } : [value];
    return value;
  });

  it("the command check accepts exactly the data within the depth every backplane carries", () => {
    fc.assert(
      fc.property(fc.oneof(json, deep), (data) => {
        const command = { v: 1, event: "message", data };
        const tooDeep = valueExceedsDepth(command, MAX_COMMAND_DEPTH);
        const asValue = checkPublishCommand(command, { maxBytes: 1024 * 1024 });
        const asText = checkPublishCommand(JSON.stringify(command), { maxBytes: 1024 * 1024 });
        // The same verdict whether the command arrives as text (queue, stream, HTTP) or a value.
        expect(asText.ok).toBe(asValue.ok);
        if (tooDeep) {
          expect(asValue).toMatchObject({ ok: false, code: "too_deep" });
          expect(asText).toMatchObject({ ok: false, code: "too_deep" });
        } else {
          expect(asValue.ok).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});
