import { encode } from "@msgpack/msgpack";
import { RedisAdapter, type RedisAdapterOptions } from "@socket.io/redis-adapter";
import type { Namespace } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import type { RedisClient } from "./connection.js";

/** msgpack's header of a 3-element array (fixarray): how the official adapter frames a broadcast. */
const FIXARRAY_3 = 0x93;

/**
 * The official adapter's options but `parser`: the self-echo check reads the default msgpack
 * framing.
 */
export type ClassicOptions = Partial<Omit<RedisAdapterOptions, "parser">>;

/** The official classic adapter with its private message hook made visible to a subclass. */
const OfficialAdapter = RedisAdapter as unknown as new (
  nsp: Namespace,
  pubClient: RedisClient,
  subClient: RedisClient,
  opts?: ClassicOptions,
) => Omit<RedisAdapter, "onmessage"> & {
  onmessage(pattern: unknown, channel: Buffer | string, msg: Buffer): void;
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
    const uid = encode(String(this.uid));
    this.ownPrefix = Buffer.concat([Buffer.of(FIXARRAY_3), uid]);
  }

  override onmessage(pattern: unknown, channel: Buffer | string, msg: Buffer): void {
    if (isOwnBroadcast(msg, this.ownPrefix)) return;
    super.onmessage(pattern, channel, msg);
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
