import { describe, expect, it } from "vitest";
import { isValidEventName, isValidRoomName } from "../../core/names.js";
import { checkClientRoom } from "../../services/gateway/rooms.js";

describe("room names", () => {
  it.each(["chat:1", "a", "user.9@team/x-y_z", "x".repeat(200)])("accepts %s", (room) => {
    expect(isValidRoomName(room)).toBe(true);
    expect(checkClientRoom(room)).toBe("ok");
  });

  it.each([
    "",
    "x".repeat(201),
    "has space",
    "é",
    "a*b",
    "a\nb",
    42,
    null,
    undefined,
    ["chat:1"],
    { room: "x" },
  ])("rejects %o as invalid_room", (room) => {
    expect(checkClientRoom(room)).toBe("invalid_room");
  });

  it("keeps user rooms and socket ids for the server", () => {
    expect(checkClientRoom("user:42")).toBe("forbidden");
    expect(checkClientRoom("AbCdEfGhIjKlMnOpQr_-")).toBe("forbidden");
    // 20 chars but not socket-id shaped (contains ':'), so an ordinary room.
    expect(checkClientRoom("chat:aaaaaaaaaaaaaaa")).toBe("ok");
  });
});

describe("event names", () => {
  it.each(["message", "chat.message", "a:b-c_d"])("accepts %s", (event) => {
    expect(isValidEventName(event)).toBe(true);
  });

  it.each([
    "",
    "connect",
    "disconnect",
    "disconnecting",
    "error",
    "newListener",
    "has space",
    "x".repeat(101),
    7,
  ])("rejects %o", (event) => {
    expect(isValidEventName(event)).toBe(false);
  });
});
