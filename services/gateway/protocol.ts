import type { Socket } from "socket.io";
import { valueExceedsDepth } from "../../core/json-depth.js";
import { isValidEventName } from "../../core/names.js";
import { MAX_COMMAND_DEPTH } from "../../core/publish-command.js";
import { type AckReply, type ClientErrorCode, fail, ok } from "./client-errors.js";
import type { Logger } from "./logger.js";
import { TokenBucket } from "./rate-limit.js";
import { checkClientRoom } from "./rooms.js";

/** Decides what an (authenticated) client may do; the default allows every valid room. */
export interface Authorizer {
  canJoin(socket: Socket, room: string): boolean;
  canPublish(socket: Socket, room: string): boolean;
}

export const allowAll: Authorizer = { canJoin: () => true, canPublish: () => true };

export interface ProtocolOptions {
  gatewayId: string;
  maxPublishBytes: number;
  maxRoomsPerSocket: number;
  rateLimitPerSec: number;
  rateLimitBurst: number;
  maxStrikes: number;
  logger: Logger;
  authorizer?: Authorizer;
  /** `refresh(token)`: replaces the socket's token (see session.ts); absent means nothing to refresh. */
  refresh?: (socket: Socket, token: unknown) => Promise<AckReply>;
  /** Called after each accepted client `publish` was handed to the adapter (migration mirrors). */
  onPublish?: (publish: ClientPublish) => void;
  /** Called once per handled client event, for metrics. */
  onEvent?: (event: string, result: "ok" | "missing_ack" | ClientErrorCode) => void;
}

/** One accepted client `publish`: `socket` is the sender, who does not receive it. */
export interface ClientPublish {
  namespace: string;
  room: string;
  event: string;
  data: unknown;
  socket: string;
}

export interface WhoAmI {
  id: string;
  gateway: string;
  rooms: string[];
}

type Reply = AckReply | WhoAmI;
type Handler = (socket: Socket, arg: unknown) => Reply | Promise<Reply>;
type Ack = (reply: unknown) => void;

/** What the protocol keeps per socket: its rate-limit bucket and its strikes. */
interface ClientState {
  bucket: TokenBucket;
  strikes: number;
}

const PUBLISH_KEYS = new Set(["room", "event", "data"]);

/** `data` of a client publish nests as deep as a publish command's (the command is one level). */
const MAX_DATA_DEPTH = MAX_COMMAND_DEPTH - 1;

/** The metric label and log value of every event the protocol does not know. */
export const UNKNOWN_EVENT = "(unknown)";

/**
 * The client protocol (docs/PROTOCOL.md): `join`, `leave`, `publish`, `refresh`, `whoami`, each
 * with an ack.
 * Errors are ack values; every violation is a strike, and a socket with too many strikes is
 * disconnected, alone.
 *
 * Built once per gateway: the handlers and the one dispatcher are shared by every socket, which
 * only carries the dispatcher as its `onAny` listener (called with the socket as `this`, before
 * Socket.IO dispatches the event) and, from its first event on, a small state object. Client
 * events are answered here only: add no `socket.on` listener for them elsewhere.
 */
export function createClientProtocol(options: ProtocolOptions): (socket: Socket) => void {
  const { logger, maxStrikes, onEvent } = options;
  const authorizer = options.authorizer ?? allowAll;
  const states = new WeakMap<Socket, ClientState>();

  const strike = (socket: Socket, state: ClientState, event: string, reason: string) => {
    state.strikes += 1;
    logger.debug(
      { socket: socket.id, event, reason, strikes: state.strikes },
      "client protocol violation",
    );
    if (state.strikes >= maxStrikes && socket.connected) {
      logger.warn(
        { socket: socket.id, event, reason, strikes: state.strikes },
        "client disconnected: too many violations",
      );
      socket.disconnect(true);
    }
  };

  const handlers = new Map<string, Handler>([
    [
      "join",
      (socket, room) => {
        const check = checkClientRoom(room);
        if (check !== "ok") return fail(check);
        const name = room as string;
        if (!authorizer.canJoin(socket, name)) return fail("forbidden");
        // socket.rooms holds the socket's own id too.
        if (!socket.rooms.has(name) && socket.rooms.size - 1 >= options.maxRoomsPerSocket) {
          return fail("too_many_rooms");
        }
        // A backplane may confirm the join asynchronously (a broker binding): ack after it.
        const joined = socket.join(name);
        return isPromise(joined) ? joined.then(ok) : ok();
      },
    ],
    [
      "leave",
      (socket, room) => {
        const check = checkClientRoom(room);
        if (check !== "ok") return fail(check);
        const left = socket.leave(room as string);
        return isPromise(left) ? left.then(ok) : ok();
      },
    ],
    [
      "publish",
      (socket, payload) => {
        if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
          return fail("invalid_payload");
        }
        const fields = payload as Record<string, unknown>;
        for (const key in fields) {
          if (!PUBLISH_KEYS.has(key)) return fail("invalid_payload");
        }
        const check = checkClientRoom(fields.room);
        if (check !== "ok") return fail(check);
        if (!isValidEventName(fields.event)) return fail("invalid_event");
        const data = fields.data ?? null;
        // Depth: the same bound as a publish command's data, what every backplane's encoder
        // carries. Size: an upper bound from the same walk; JSON.stringify only near the limit.
        const bound = jsonSizeBound(data, MAX_DATA_DEPTH, options.maxPublishBytes);
        if (bound === TOO_DEEP) return fail("payload_too_deep");
        if (bound === OVER_BUDGET) {
          // The walk stopped where the bound passed the limit: the rest may still nest too deep.
          if (valueExceedsDepth(data, MAX_DATA_DEPTH)) return fail("payload_too_deep");
          if (!fitsJson(data, options.maxPublishBytes)) return fail("payload_too_large");
        }
        const room = fields.room as string;
        if (!authorizer.canPublish(socket, room)) return fail("forbidden");
        socket.to(room).emit(fields.event, data);
        options.onPublish?.({
          namespace: socket.nsp.name,
          room,
          event: fields.event,
          data,
          socket: socket.id,
        });
        return ok();
      },
    ],
    ["refresh", (socket, token) => (options.refresh ? options.refresh(socket, token) : ok())],
    [
      "whoami",
      (socket) => ({
        id: socket.id,
        gateway: options.gatewayId,
        rooms: [...socket.rooms].filter((room) => room !== socket.id),
      }),
    ],
  ]);

  const settle = (socket: Socket, state: ClientState, event: string, result: Reply, ack: Ack) => {
    // The ack goes first: a request that is the last strike still gets its error, before the
    // disconnect (as refuse() does).
    ack(result);
    if ("error" in result) {
      onEvent?.(event, result.error);
      if (result.error !== "internal") strike(socket, state, event, result.error);
    } else {
      onEvent?.(event, "ok");
    }
  };

  function onClientEvent(this: Socket, event: unknown, ...args: unknown[]): void {
    // Made at the socket's first event: an idle socket carries no state (≈ 150 B each).
    let state = states.get(this);
    if (state === undefined) {
      state = {
        bucket: new TokenBucket(options.rateLimitPerSec, options.rateLimitBurst),
        strikes: 0,
      };
      states.set(this, state);
    }
    const handler = typeof event === "string" ? handlers.get(event) : undefined;
    // Names clients choose never become metric labels or log fields as they are: one label for
    // every unknown event keeps /metrics bounded whatever clients send.
    const name = handler === undefined ? UNKNOWN_EVENT : (event as string);
    const last = args.length > 0 ? args[args.length - 1] : undefined;
    const ack = typeof last === "function" ? (last as Ack) : undefined;
    if (!state.bucket.take()) return refuse(this, state, name, ack, "rate_limited");
    if (handler === undefined) return refuse(this, state, name, ack, "unknown_event");
    if (ack === undefined) {
      onEvent?.(name, "missing_ack");
      return strike(this, state, name, "missing_ack");
    }
    let result: Reply | Promise<Reply>;
    try {
      result = handler(this, args.length > 1 ? args[0] : undefined);
    } catch (err) {
      result = failed(this, name, err);
    }
    if (isPromise(result)) {
      result.then(
        (reply) => settle(this, state, name, reply, ack),
        (err: unknown) => settle(this, state, name, failed(this, name, err), ack),
      );
    } else {
      settle(this, state, name, result, ack);
    }
  }

  const refuse = (
    socket: Socket,
    state: ClientState,
    event: string,
    ack: Ack | undefined,
    error: ClientErrorCode,
  ) => {
    ack?.(fail(error));
    onEvent?.(event, error);
    strike(socket, state, event, error);
  };

  const failed = (socket: Socket, event: string, err: unknown) => {
    logger.error({ err, socket: socket.id, event }, "client event failed");
    return fail("internal");
  };

  return (socket) => {
    socket.onAny(onClientEvent);
  };
}

/** One socket with its own protocol instance; a gateway builds one with createClientProtocol. */
export function attachClientProtocol(socket: Socket, options: ProtocolOptions): void {
  createClientProtocol(options)(socket);
}

const isPromise = <T>(value: T | PromiseLike<T>): value is PromiseLike<T> =>
  typeof (value as PromiseLike<T> | undefined)?.then === "function";

const TOO_DEEP = -1;
const OVER_BUDGET = -2;
/**
 * The most characters JSON writes for a number: "-0.0000012345678901234567" (fixed notation
 * reaches down to 1e-6 with 17 significant digits); "-1.2345678901234567e-308" is one shorter.
 */
const NUMBER_CHARS = 25;

/**
 * One walk over a client's `data` without allocating: TOO_DEEP when objects and arrays nest
 * deeper than `maxDepth` (a cyclic value too: its walk reaches the bound), OVER_BUDGET as soon as
 * an upper bound of its JSON size in UTF-8 bytes passes `budget` (the walk stops there: the
 * caller checks depth and exact size the slow way), else that bound. Bounds: a string 6 bytes per UTF-16 unit (`\u` escapes) plus its quotes, a
 * number 25, punctuation counted in full, binary its byte length (exact). Recursion is as deep
 * as `maxDepth` at most.
 */
export function jsonSizeBound(value: unknown, maxDepth: number, budget: number): number {
  switch (typeof value) {
    case "string":
      return value.length * 6 + 2 > budget ? OVER_BUDGET : value.length * 6 + 2;
    case "number":
      return NUMBER_CHARS;
    case "object":
      break;
    default:
      // booleans, and what JSON leaves out or writes as null
      return 5;
  }
  if (value === null) return 4;
  if (maxDepth === 0) return TOO_DEEP;
  // Binary (Socket.IO attachments: a Buffer, a typed array, an ArrayBuffer) travels as bytes,
  // not as JSON: it counts its byte length.
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return value.byteLength > budget ? OVER_BUDGET : value.byteLength;
  }
  let size = 2;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = jsonSizeBound(value[i], maxDepth - 1, budget - size);
      if (item < 0) return item;
      size += item + 1;
      if (size > budget) return OVER_BUDGET;
    }
  } else {
    const object = value as Record<string, unknown>;
    for (const key in object) {
      if (!Object.hasOwn(object, key)) continue;
      size += key.length * 6 + 4;
      const item =
        size > budget ? OVER_BUDGET : jsonSizeBound(object[key], maxDepth - 1, budget - size);
      if (item < 0) return item;
      size += item;
    }
  }
  return size > budget ? OVER_BUDGET : size;
}

/**
 * Whether `value` as JSON takes at most `limit` UTF-8 bytes, exactly: called only where
 * `jsonSizeBound`'s upper bound passed the limit (its string shortcut has been tried there).
 */
function fitsJson(value: unknown, limit: number): boolean {
  // Binary counts its bytes, as in jsonSizeBound: written as `0` here (toJSON would make a Buffer
  // `{"type":"Buffer","data":[…]}`, ≈ 3.5 bytes a byte), its other bytes added. The replacer sees
  // the value before toJSON as `this[key]`.
  let binary = 0;
  function replacer(this: Record<string, unknown>, key: string, json: unknown): unknown {
    const raw = this[key];
    if (ArrayBuffer.isView(raw) || raw instanceof ArrayBuffer) {
      binary += raw.byteLength - 1;
      return 0;
    }
    return json;
  }
  try {
    return Buffer.byteLength(JSON.stringify(value, replacer) ?? "null") + binary <= limit;
  } catch {
    // Circular or BigInt values cannot come from a client packet; treat them as too large.
    return false;
  }
}
