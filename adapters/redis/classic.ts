import { createRequire } from "node:module";
import type {
  RedisAdapter as OfficialRedisAdapter,
  RedisAdapterOptions,
} from "@socket.io/redis-adapter";
import type { Namespace } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import type { RedisClient } from "./connection.js";
import { encodeLikeNotepack } from "./msgpack.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const require = createRequire(import.meta.url);
const { RedisAdapter } =
  require("@socket.io/redis-adapter") as typeof import("@socket.io/redis-adapter");

/** msgpack's header of a 3-element array (fixarray): how the official adapter frames a broadcast. */
const FIXARRAY_3 = 0x93;

/**
 * The official adapter's options but `parser`: the self-echo check reads the default msgpack
 * framing.
 */
export type ClassicOptions = Partial<Omit<RedisAdapterOptions, "parser">>;

/** The official adapter's `parser` option: its default is notepack.io's encode and decode. */
export interface Parser {
  encode(value: unknown): Buffer;
  decode(msg: Buffer): unknown;
}

/** The official classic adapter with its private message hook made visible to a subclass. */
const OfficialAdapter = RedisAdapter as unknown as new (
  nsp: Namespace,
  pubClient: RedisClient,
  subClient: RedisClient,
  opts?: ClassicOptions,
) => Omit<OfficialRedisAdapter, "onmessage"> & {
  onmessage(pattern: unknown, channel: Buffer | string, msg: Buffer): void;
  parser: Parser;
};

/**
 * `@socket.io/redis-adapter`'s classic adapter, unchanged on the wire, that drops its own
 * broadcasts before decoding them. Redis delivers every PUBLISH to every subscriber, the
 * publishing node included: the official adapter msgpack-decodes each of its own messages in
 * full (packet and options) only to discard it by its `uid`, so with N nodes 1/N of every node's
 * inbound traffic is decoded for nothing. A broadcast is encoded as the msgpack array
 * `[uid, packet, opts]`, so the node's own messages start with the same few bytes (the array
 * header and the uid string): comparing them is enough to drop one. Anything else (other nodes,
 * `@socket.io/redis-emitter`, whose uid is "emitter") takes the official path.
 *
 * It also encodes what it publishes with `encodeLikeNotepack` (msgpack.ts): the default parser's
 * bytes without its garbage, when a check at construction finds both encode a broadcast alike
 * (else the default parser stays). Decoding is the default parser's.
 */
export class EchoFreeRedisAdapter extends OfficialAdapter {
  /** The bytes every one of this node's broadcasts starts with. */
  private readonly ownPrefix: Buffer;

  constructor(
    nsp: Namespace,
    pubClient: RedisClient,
    subClient: RedisClient,
    opts?: ClassicOptions,
  ) {
    super(nsp, pubClient, subClient, opts);
    // The uid as the adapter's own parser (notepack) writes it at the head of every broadcast.
    const uid = this.parser.encode(String(this.uid));
    this.ownPrefix = Buffer.concat([Buffer.of(FIXARRAY_3), uid]);
    this.parser = leanParser(this.parser, String(this.uid));
  }

  override onmessage(pattern: unknown, channel: Buffer | string, msg: Buffer): void {
    if (isOwnBroadcast(msg, this.ownPrefix)) return;
    super.onmessage(pattern, channel, msg);
  }
}

/**
 * A parser that encodes as `stock` does, with `encodeLikeNotepack`, or `stock` itself when the two
 * do not give the same bytes for a broadcast shaped as the adapter sends them (a parser other than
 * notepack.io 3's, say).
 */
export function leanParser(stock: Parser, uid: string): Parser {
  const sample = [
    uid,
    {
      type: 2,
      data: ["message", { text: "héllo ✓ 🎉", n: -1.5, big: 2 ** 40, ok: true }],
      nsp: "/",
    },
    { rooms: ["room:1"], except: ["abc"], flags: { volatile: undefined, local: false } },
  ];
  try {
    const fallback = (value: unknown) => stock.encode(value);
    if (!encodeLikeNotepack(sample, fallback).equals(stock.encode(sample))) return stock;
    return {
      encode: (value) => encodeLikeNotepack(value, fallback),
      decode: (msg) => stock.decode(msg),
    };
  } catch {
    return stock;
  }
}

/** Whether `msg` starts with `prefix` (a node's array header and uid). */
export function isOwnBroadcast(msg: Uint8Array, prefix: Uint8Array): boolean {
  if (msg.length <= prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (msg[i] !== prefix[i]) return false;
  return true;
}

/** `createAdapter` of the official package, with its adapter dropping self-echoes (above). */
export function createEchoFreeAdapter(
  pubClient: RedisClient,
  subClient: RedisClient,
  opts?: ClassicOptions,
): (nsp: Namespace) => Adapter {
  // A function, not an arrow: Socket.IO calls the adapter option with `new`.
  // biome-ignore lint/complexity/useArrowFunction: must be constructible
  return function (nsp: Namespace) {
    return new EchoFreeRedisAdapter(nsp, pubClient, subClient, opts) as unknown as Adapter;
  };
}
