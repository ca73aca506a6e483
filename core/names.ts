/**
 * Names every path shares: the rooms and events clients, publish commands and emitters may use.
 */

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
