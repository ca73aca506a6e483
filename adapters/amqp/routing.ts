import { createHash } from "node:crypto";
import type { BroadcastFlags, BroadcastOptions, Room } from "socket.io-adapter";
import { isSocketIdShaped } from "../../core/names.js";
import { MessageType } from "./cjs.js";
import type { WireMessage } from "./codec.js";

/**
 * Routing keys on the topic exchange (one dot-separated word each):
 *
 *   a.<nsp>          "all": every node with an adapter for <nsp> binds it
 *   r.<nsp>.<room>   a room: bound while the node has a local member
 *   n.<nsp>.<uid>    one node: responses go to the asking node only
 *
 * Socket ids are rooms too, but a room shaped like one (core/names.ts) has no
 * key of its own: a message targeting one goes to "all" and every node
 * filters it locally. Binding a key per socket would cost a broker round trip
 * before every CONNECT (an emit to the id may follow as soon as the client
 * knows it) and another at disconnect; the price is that single-socket emits
 * reach every node of the namespace, as every emit does on Redis.
 *
 * Publishers never depend on how subscribers bind: a node in fan-out mode
 * binds `r.<nsp>.*` and still gets every room message. That keeps emitters
 * correct whatever mode the gateways run in.
 */
export const KeyKind = { ALL: "a", ROOM: "r", NODE: "n" } as const;

/** Above this many target rooms one message on the "all" key is cheaper than one per room. */
export const MAX_ROOMS_PER_SPLIT = 8;

const MAX_WORD_BYTES = 100; // 3 words stay under AMQP's 255-byte routing key limit
const SAFE = /^[A-Za-z0-9_:@/-]$/;

/**
 * Escapes one routing-key word so it never contains `.`, never equals a
 * wildcard (`*`, `#`), and stays injective: unsafe characters become `~HH`
 * per UTF-8 byte. Long words are hashed (`~h…`); a hash collision only costs
 * an extra delivery, since receivers still filter by their real rooms.
 */
export function encodeWord(value: string): string {
  if (value === "") return "~";
  let out = "";
  for (const char of value) {
    if (SAFE.test(char)) {
      out += char;
    } else {
      for (const byte of Buffer.from(char, "utf8"))
        out += `~${byte.toString(16).toUpperCase().padStart(2, "0")}`;
    }
  }
  if (Buffer.byteLength(out) <= MAX_WORD_BYTES) return out;
  return `~h${createHash("sha256").update(value).digest("base64url")}`;
}

export function allKey(nsp: string): string {
  return `${KeyKind.ALL}.${encodeWord(nsp)}`;
}

/**
 * A room's key. Socket.IO accepts any `Room` at run time (numbers too, as
 * `socket.join(123)`), so the name is stringified: 123 and "123" share a key,
 * which only costs an extra delivery, since receivers filter by real rooms.
 */
export function roomKey(nsp: string, room: Room | number): string {
  return `${KeyKind.ROOM}.${encodeWord(nsp)}.${encodeWord(String(room))}`;
}

/** Whether a node binds `room`'s own key while it has members (socket-id-shaped rooms: never). */
export function hasRoomKey(room: Room): boolean {
  return !isSocketIdShaped(room);
}

/** Binding pattern a fan-out node uses to receive every room message of `nsp`. */
export function allRoomsPattern(nsp: string): string {
  return `${KeyKind.ROOM}.${encodeWord(nsp)}.*`;
}

export function nodeKey(nsp: string, uid: string): string {
  return `${KeyKind.NODE}.${encodeWord(nsp)}.${encodeWord(uid)}`;
}

/** The wire form of BroadcastOptions (Sets become arrays), as socket.io-adapter sends it. */
export interface WireBroadcastOptions {
  rooms: Room[];
  except: Room[];
  flags: BroadcastFlags;
}

export function encodeOptions(opts: BroadcastOptions): WireBroadcastOptions {
  return { rooms: [...opts.rooms], except: [...(opts.except ?? [])], flags: opts.flags ?? {} };
}

export interface Routed {
  key: string;
  message: WireMessage;
}

/**
 * Chooses the routing key(s) of an outgoing message.
 *
 * Messages every node must see go to "all": heartbeats, close, requests that
 * count answers per node (fetchSockets, serverSideEmit, and broadcasts with
 * ack, where Socket.IO waits for a client count from every server).
 *
 * Room-scoped work (broadcast, socketsJoin/Leave, disconnectSockets) goes to
 * its rooms' keys, unless a target room is shaped like a socket id (no node
 * binds such a key: see above), or there are too many rooms. With several rooms, copy i targets room i and excepts rooms
 * 0..i-1, so a socket in two rooms is reached exactly once (by the first copy
 * whose room it is in), and a node binding several of the rooms applies the
 * operation once per socket. Copies from one channel reach a queue in order.
 */
export function route(
  message: WireMessage,
  keyOf: (nsp: string, room: Room) => string = roomKey,
): Routed[] {
  const nsp = message.nsp;
  const opts = roomScopedOptions(message);
  if (
    !opts ||
    opts.rooms.length === 0 ||
    opts.rooms.length > MAX_ROOMS_PER_SPLIT ||
    opts.rooms.some(isSocketIdShaped)
  ) {
    return [{ key: allKey(nsp), message }];
  }
  if (opts.rooms.length === 1) {
    return [{ key: keyOf(nsp, opts.rooms[0] as Room), message }];
  }
  const rooms = [...new Set(opts.rooms)];
  return rooms.map((room, i) => {
    const copy = withOptions(message, {
      ...opts,
      rooms: [room],
      except: [...opts.except, ...rooms.slice(0, i)],
    });
    return { key: keyOf(nsp, room), message: copy };
  });
}

function roomScopedOptions(message: WireMessage): WireBroadcastOptions | undefined {
  switch (message.type) {
    case MessageType.BROADCAST:
      return message.data.requestId === undefined ? message.data.opts : undefined;
    case MessageType.SOCKETS_JOIN:
    case MessageType.SOCKETS_LEAVE:
    case MessageType.DISCONNECT_SOCKETS:
      return message.data.opts;
    default:
      return undefined;
  }
}

/** Same message, new `data.opts`; the packet itself is shared, not copied. */
function withOptions(message: WireMessage, opts: WireBroadcastOptions): WireMessage {
  const data = (message as { data: Record<string, unknown> }).data;
  return { ...message, data: { ...data, opts } } as WireMessage;
}

/**
 * How long after publishing a socketsJoin this publisher keeps sending
 * room-scoped messages for the joined rooms on the "all" key. A remote node
 * binds a room's key only once it has processed the join, so a broadcast
 * published right behind the join would otherwise be routed before that
 * binding exists. On "all" it lands in the node's queue behind the join,
 * preserving the per-publisher order Socket.IO users rely on
 * (`io.in(a).socketsJoin(b); io.to(b).emit(…)`).
 */
export const JOIN_GRACE_MS = 3_000;
const MAX_TRACKED_JOINS = 10_000;

/** Routing keys remembered per publisher; past this many, the memory starts over. */
const MAX_CACHED_KEYS = 1_000;

/**
 * `route()` plus the per-publisher memory of recent joins (see JOIN_GRACE_MS), and of the
 * routing keys of the rooms it publishes to: a room's key escapes the room name character by
 * character (`encodeWord`), which showed in the publishing gateway's instruction counts, while a
 * gateway publishes to the same few rooms over and over.
 */
export class Router {
  private readonly recentJoins = new Map<string, number>(); // nsp\0room -> expiry, in expiry order
  private readonly keys = new Map<string, Map<Room, string>>(); // nsp -> room -> key
  private cachedKeys = 0;
  private readonly keyOf = (nsp: string, room: Room): string => {
    let byRoom = this.keys.get(nsp);
    const cached = byRoom?.get(room);
    if (cached !== undefined) return cached;
    const key = roomKey(nsp, room);
    if (this.cachedKeys >= MAX_CACHED_KEYS) {
      this.keys.clear();
      this.cachedKeys = 0;
      byRoom = undefined;
    }
    if (!byRoom) {
      byRoom = new Map();
      this.keys.set(nsp, byRoom);
    }
    byRoom.set(room, key);
    this.cachedKeys++;
    return key;
  };

  route(message: WireMessage, now = Date.now()): Routed[] {
    const opts = roomScopedOptions(message);
    if (
      opts &&
      this.recentJoins.size > 0 &&
      opts.rooms.some((room) => this.joinedRecently(message.nsp, room, now))
    ) {
      return [{ key: allKey(message.nsp), message }];
    }
    if (message.type === MessageType.SOCKETS_JOIN) {
      for (const room of message.data.rooms) this.remember(message.nsp, room, now);
    }
    return route(message, this.keyOf);
  }

  private joinedRecently(nsp: string, room: Room, now: number): boolean {
    const expiry = this.recentJoins.get(`${nsp}\0${room}`);
    return expiry !== undefined && expiry > now;
  }

  private remember(nsp: string, room: Room, now: number): void {
    const id = `${nsp}\0${room}`;
    this.recentJoins.delete(id); // re-insert to keep the map in expiry order
    this.recentJoins.set(id, now + JOIN_GRACE_MS);
    for (const [key, expiry] of this.recentJoins) {
      if (expiry > now && this.recentJoins.size <= MAX_TRACKED_JOINS) break;
      this.recentJoins.delete(key);
    }
  }
}
