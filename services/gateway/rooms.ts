import { isValidRoomName } from "../../core/names.js";

/**
 * Rooms clients may use: the names of core/names.ts, except that `user:*` rooms are assigned by
 * the server (from the token's `sub`), and socket-id rooms belong to their socket, so clients may
 * not join them.
 */

/** Socket.IO ids are 20 chars of base64url; a client room of that exact shape could hijack one. */
const SOCKET_ID_SHAPE = /^[A-Za-z0-9_-]{20}$/;

export type RoomCheck = "ok" | "invalid_room" | "forbidden";

/** Whether a client may name `room` in join/leave/publish (authorization comes on top). */
export function checkClientRoom(room: unknown): RoomCheck {
  if (!isValidRoomName(room)) return "invalid_room";
  if (room.startsWith("user:") || SOCKET_ID_SHAPE.test(room)) return "forbidden";
  return "ok";
}
