import type { Socket } from "socket.io";
import { isValidEventName } from "../../core/names.js";
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
  onEvent?: (event: string, result: "ok" | ClientErrorCode) => void;
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

type Handler = (args: unknown[]) => AckReply | WhoAmI | Promise<AckReply | WhoAmI>;

const PUBLISH_KEYS = new Set(["room", "event", "data"]);

/**
 * The client protocol (docs/PROTOCOL.md): `join`, `leave`, `publish`, `refresh`, `whoami`, each
 * with an ack.
 * Errors are ack values; every violation is a strike, and a socket with too many strikes is
 * disconnected, alone.
 */
export function attachClientProtocol(socket: Socket, options: ProtocolOptions): void {
  const { logger, maxStrikes } = options;
  const authorizer = options.authorizer ?? allowAll;
  const bucket = new TokenBucket(options.rateLimitPerSec, options.rateLimitBurst);
  let strikes = 0;

  const strike = (event: string, reason: ClientErrorCode | "missing_ack") => {
    strikes += 1;
    logger.debug({ socket: socket.id, event, reason, strikes }, "client protocol violation");
    if (strikes >= maxStrikes && socket.connected) {
      logger.warn(
        { socket: socket.id, event, reason, strikes },
        "client disconnected: too many violations",
      );
      socket.disconnect(true);
    }
  };

  const handlers: Record<string, Handler> = {
    join: async ([room]) => {
      const check = checkClientRoom(room);
      if (check !== "ok") return fail(check);
      const name = room as string;
      if (!authorizer.canJoin(socket, name)) return fail("forbidden");
      // socket.rooms holds the socket's own id too.
      if (!socket.rooms.has(name) && socket.rooms.size - 1 >= options.maxRoomsPerSocket) {
        return fail("too_many_rooms");
      }
      await socket.join(name);
      return ok();
    },
    leave: async ([room]) => {
      const check = checkClientRoom(room);
      if (check !== "ok") return fail(check);
      await socket.leave(room as string);
      return ok();
    },
    publish: ([payload]) => {
      if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
        return fail("invalid_payload");
      }
      const fields = payload as Record<string, unknown>;
      if (Object.keys(fields).some((key) => !PUBLISH_KEYS.has(key))) return fail("invalid_payload");
      const check = checkClientRoom(fields.room);
      if (check !== "ok") return fail(check);
      if (!isValidEventName(fields.event)) return fail("invalid_event");
      const data = fields.data ?? null;
      if (jsonSize(data) > options.maxPublishBytes) return fail("payload_too_large");
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
    refresh: ([token]) => (options.refresh ? options.refresh(socket, token) : ok()),
    whoami: () => ({
      id: socket.id,
      gateway: options.gatewayId,
      rooms: [...socket.rooms].filter((room) => room !== socket.id),
    }),
  };

  // Runs before any listener: rate limit and unknown events are answered here.
  socket.use((packet, next) => {
    const [event] = packet;
    const ack = packet.at(-1);
    const reply = (error: ClientErrorCode) => {
      if (typeof ack === "function") ack(fail(error));
      options.onEvent?.(String(event), error);
      strike(String(event), error);
    };
    if (!bucket.take()) return reply("rate_limited");
    if (typeof event !== "string" || !Object.hasOwn(handlers, event)) return reply("unknown_event");
    next();
  });

  for (const [event, handler] of Object.entries(handlers)) {
    socket.on(event, async (...args: unknown[]) => {
      const last = args.at(-1);
      if (typeof last !== "function") {
        options.onEvent?.(event, "invalid_payload");
        return strike(event, "missing_ack");
      }
      const ack = last as (reply: unknown) => void;
      let result: AckReply | WhoAmI;
      try {
        result = await handler(args.slice(0, -1));
      } catch (err) {
        logger.error({ err, socket: socket.id, event }, "client event failed");
        result = fail("internal");
      }
      if ("error" in result) {
        options.onEvent?.(event, result.error);
        if (result.error !== "internal") strike(event, result.error);
      } else {
        options.onEvent?.(event, "ok");
      }
      ack(result);
    });
  }
}

function jsonSize(value: unknown): number {
  try {
    return Buffer.byteLength(JSON.stringify(value) ?? "null");
  } catch {
    // Circular or BigInt values cannot come from a client packet; treat them as too large.
    return Number.POSITIVE_INFINITY;
  }
}
