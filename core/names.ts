/**
 * Names every path shares: the rooms and events clients, publish commands and emitters may use.
 */

/**
 * Socket.IO's socket ids: 20 chars of base64url (engine.io's base64id). Every socket is in the
 * room of its own id, so a room of this shape is treated as a socket's: clients may not name one,
 * and the RabbitMQ backplane routes it on the key every node binds instead of a key of its own.
 */
export const SOCKET_ID_SHAPE = /^[A-Za-z0-9_-]{20}$/;

/** Whether `room` has the shape of a socket id (numbers, which Socket.IO also accepts, never do). */
export function isSocketIdShaped(room: unknown): room is string {
  return typeof room === "string" && SOCKET_ID_SHAPE.test(room);
}

/** Room names: 1-200 chars of [A-Za-z0-9:_.@/-]. */
export const ROOM_PATTERN = /^[A-Za-z0-9:_.@/-]{1,200}$/;

/** Event names clients and publish commands may use: a bounded charset… */
export const EVENT_PATTERN = /^[A-Za-z0-9:_.-]{1,100}$/;

/**
 * …and none that Socket.IO names itself: emitting one throws in Socket.IO or confuses clients
 * (`error` included: a client's `socket.on("error")` is not where an application event belongs).
 */
export const RESERVED_EVENT_NAMES = [
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
  "error",
] as const;

export const RESERVED_EVENTS: ReadonlySet<string> = new Set(RESERVED_EVENT_NAMES);

export function isReservedEvent(event: string): boolean {
  return RESERVED_EVENTS.has(event);
}

export function isValidRoomName(room: unknown): room is string {
  return typeof room === "string" && ROOM_PATTERN.test(room);
}

export function isValidEventName(event: unknown): event is string {
  return typeof event === "string" && EVENT_PATTERN.test(event) && !RESERVED_EVENTS.has(event);
}
