import { isSocketIdShaped, isValidRoomName } from "../../core/names.js";

/**
 * Rooms clients may use: the names of core/names.ts, except that `user:*` rooms are assigned by
 * the server (from the token's `sub`), and socket-id rooms belong to their socket, so clients may
 * not join them.
 */

export type RoomCheck = "ok" | "invalid_room" | "forbidden";

/** Whether a client may name `room` in join/leave/publish (authorization comes on top). */
export function checkClientRoom(room: unknown): RoomCheck {
  if (!isValidRoomName(room)) return "invalid_room";
  if (room.startsWith("user:") || isSocketIdShaped(room)) return "forbidden";
  return "ok";
}
