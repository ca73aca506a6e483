import type { ClusterMessage } from "socket.io-adapter";
import { MessageType } from "socket.io-adapter";
import { describe, expect, it } from "vitest";
import {
  allKey,
  encodeWord,
  hasRoomKey,
  JOIN_GRACE_MS,
  MAX_ROOMS_PER_SPLIT,
  nodeKey,
  Router,
  roomKey,
  route,
} from "../../adapters/amqp/routing.js";

const opts = (rooms: string[], except: string[] = []) => ({ rooms, except, flags: {} });

describe("amqp routing keys", () => {
  it("carry the kind and the namespace, one word each", () => {
    expect(allKey("/")).toBe("a./");
    expect(roomKey("/chat", "room:1")).toBe("r./chat.room:1");
    expect(nodeKey("/", "f00d")).toBe("n./.f00d");
  });

  it("escape dots, wildcards and the escape character so a room is always one literal word", () => {
    for (const room of ["a.b", "*", "#", "~", "a b", "é", "x.#.*"]) {
      const word = encodeWord(room);
      expect(word).not.toMatch(/[.*#\s]/);
      expect(word).not.toBe("*");
    }
    expect(encodeWord("a.b")).toBe("a~2Eb");
    expect(encodeWord("")).toBe("~");
    expect(new Set(["a.b", "a~2Eb", "a_b", ""].map(encodeWord)).size).toBe(4);
  });

  it("hash very long rooms and keep keys within AMQP's 255 bytes", () => {
    const key = roomKey("/".repeat(300), "x".repeat(1_000));
    expect(Buffer.byteLength(key)).toBeLessThanOrEqual(255);
    expect(roomKey("/", "x".repeat(1_000))).not.toBe(roomKey("/", "y".repeat(1_000)));
  });
});

describe("amqp message routing", () => {
  const base = { uid: "u", nsp: "/" };

  it("sends heartbeats, requests and broadcasts with ack to every node", () => {
    const messages = [
      { ...base, type: MessageType.HEARTBEAT },
      { ...base, type: MessageType.INITIAL_HEARTBEAT },
      { ...base, type: MessageType.ADAPTER_CLOSE },
      { ...base, type: MessageType.FETCH_SOCKETS, data: { opts: opts(["r"]), requestId: "1" } },
      { ...base, type: MessageType.SERVER_SIDE_EMIT, data: { packet: ["x"] } },
      {
        ...base,
        type: MessageType.BROADCAST,
        data: { packet: {}, opts: opts(["r"]), requestId: "2" },
      },
    ] as ClusterMessage[];
    for (const m of messages) expect(route(m).map((r) => r.key)).toEqual([allKey("/")]);
  });

  it("sends a broadcast without rooms to all, and one to a room (or socket id) to its key", () => {
    const all = {
      ...base,
      type: MessageType.BROADCAST,
      data: { packet: {}, opts: opts([]) },
    } as ClusterMessage;
    expect(route(all).map((r) => r.key)).toEqual([allKey("/")]);
    const one = {
      ...base,
      type: MessageType.DISCONNECT_SOCKETS,
      data: { opts: opts(["sid1"]), close: false },
    } as ClusterMessage;
    expect(route(one)).toEqual([{ key: roomKey("/", "sid1"), message: one }]);
  });

  it("sends anything naming a socket-id-shaped room to all: no node binds a key per socket", () => {
    const sid = "AbCdEfGhIj_-0123456z"; // 20 base64url chars, as Socket.IO's ids
    const kinds = [
      { type: MessageType.BROADCAST, data: { packet: {}, opts: opts([sid]) } },
      { type: MessageType.BROADCAST, data: { packet: {}, opts: opts(["a", sid, "b"], ["x"]) } },
      { type: MessageType.SOCKETS_JOIN, data: { opts: opts([sid]), rooms: ["z"] } },
      { type: MessageType.SOCKETS_LEAVE, data: { opts: opts(["a", sid]), rooms: ["z"] } },
      { type: MessageType.DISCONNECT_SOCKETS, data: { opts: opts([sid]), close: true } },
    ];
    for (const kind of kinds) {
      const m = { ...base, ...kind } as ClusterMessage;
      expect(route(m)).toEqual([{ key: allKey("/"), message: m }]);
    }
    // An id in `except` only filters; the rooms still choose the key.
    const m = {
      ...base,
      type: MessageType.BROADCAST,
      data: { packet: {}, opts: opts(["a"], [sid]) },
    } as ClusterMessage;
    expect(route(m).map((r) => r.key)).toEqual([roomKey("/", "a")]);
    // 19 or 21 chars, or another alphabet: a named room with a key of its own.
    for (const room of [sid.slice(1), `${sid}x`, "AbCdEfGhIj.-0123456z"]) {
      expect(hasRoomKey(room)).toBe(true);
    }
    expect(hasRoomKey(sid)).toBe(false);
  });

  it("splits a multi-room message so each copy excepts the rooms before it", () => {
    const m = {
      ...base,
      type: MessageType.SOCKETS_JOIN,
      data: { opts: opts(["a", "b", "c"], ["x"]), rooms: ["z"] },
    } as ClusterMessage;
    const routed = route(m);
    expect(routed.map((r) => r.key)).toEqual(["a", "b", "c"].map((r) => roomKey("/", r)));
    expect(routed.map((r) => (r.message as { data: { opts: unknown } }).data.opts)).toEqual([
      opts(["a"], ["x"]),
      opts(["b"], ["x", "a"]),
      opts(["c"], ["x", "a", "b"]),
    ]);
    expect((m as { data: { opts: unknown } }).data.opts).toEqual(opts(["a", "b", "c"], ["x"])); // input untouched
  });

  it(`sends to all when a message targets more than ${MAX_ROOMS_PER_SPLIT} rooms`, () => {
    const rooms = Array.from({ length: MAX_ROOMS_PER_SPLIT + 1 }, (_, i) => `r${i}`);
    const m = {
      ...base,
      type: MessageType.BROADCAST,
      data: { packet: {}, opts: opts(rooms) },
    } as ClusterMessage;
    expect(route(m).map((r) => r.key)).toEqual([allKey("/")]);
  });
});

describe("amqp router: per-publisher order after a join", () => {
  const join = {
    uid: "u",
    nsp: "/",
    type: MessageType.SOCKETS_JOIN,
    data: { opts: opts([]), rooms: ["new"] },
  } as ClusterMessage;
  const toNew = {
    uid: "u",
    nsp: "/",
    type: MessageType.BROADCAST,
    data: { packet: {}, opts: opts(["new"]) },
  } as ClusterMessage;

  it("sends room messages for a just-joined room on the all key, then back on the room key", () => {
    const router = new Router();
    expect(router.route(toNew, 0).map((r) => r.key)).toEqual([roomKey("/", "new")]);
    router.route(join, 1_000);
    expect(router.route(toNew, 1_000 + JOIN_GRACE_MS - 1).map((r) => r.key)).toEqual([allKey("/")]);
    expect(router.route(toNew, 1_000 + JOIN_GRACE_MS).map((r) => r.key)).toEqual([
      roomKey("/", "new"),
    ]);
  });
});
