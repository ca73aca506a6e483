/**
 * Room names clients may use: 1-200 chars of [A-Za-z0-9:_.@/-].
 * `user:*` rooms are assigned by the server (from the token's `sub`), and socket-id rooms
 * belong to their socket, so clients may not join them.
 */
export const ROOM_PATTERN = /^[A-Za-z0-9:_.@/-]{1,200}$/;

/** Socket.IO ids are 20 chars of base64url; a client room of that exact shape could hijack one. */
const SOCKET_ID_SHAPE = /^[A-Za-z0-9_-]{20}$/;

/** Event names clients and publish commands may use: a bounded charset… */
export const EVENT_PATTERN = /^[A-Za-z0-9:_.-]{1,100}$/;
/** …and none that Socket.IO names itself (an emit of one throws or confuses clients). */
export const RESERVED_EVENT_NAMES = [
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
  "error",
] as const;
const RESERVED_EVENTS: ReadonlySet<string> = new Set(RESERVED_EVENT_NAMES);

export type RoomCheck = "ok" | "invalid_room" | "forbidden";

export function isValidRoomName(room: unknown): room is string {
  return typeof room === "string" && ROOM_PATTERN.test(room);
}

/** Whether a client may name `room` in join/leave/publish (authorization comes on top). */
export function checkClientRoom(room: unknown): RoomCheck {
  if (!isValidRoomName(room)) return "invalid_room";
  if (room.startsWith("user:") || SOCKET_ID_SHAPE.test(room)) return "forbidden";
  return "ok";
}

export function isValidEventName(event: unknown): event is string {
  return typeof event === "string" && EVENT_PATTERN.test(event) && !RESERVED_EVENTS.has(event);
}
