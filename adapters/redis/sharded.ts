import type { Namespace } from "socket.io";
import type { Adapter } from "socket.io-adapter";
import { withTimeout } from "../../core/retry.js";
import type { RedisClient } from "./connection.js";

type AdapterFactory = (nsp: Namespace) => Adapter;

/** How long a join waits for its room's subscription before it resolves anyway, in ms. */
const SUBSCRIBE_WAIT_MS = 2000;

/**
 * In `subscriptionMode: "dynamic"` the sharded adapter subscribes to a room's channel when the
 * room is created, without waiting for Redis, so `socket.join()` resolved — and the client's
 * `join` was acknowledged — before the gateway could receive the room's traffic from the others.
 * This makes `addAll` wait for the subscription: it sends SSUBSCRIBE for each new room again on
 * the same connection (Redis and ioredis treat a repeated subscription as one) and resolves on
 * its reply, which comes after the adapter's own. It does not wait while Redis is away (the
 * subscription is then made on reconnect), nor longer than SUBSCRIBE_WAIT_MS.
 */
export function joinAfterSubscribed(
  factory: AdapterFactory,
  sub: RedisClient,
  channelPrefix = "socket.io",
): AdapterFactory {
  // A function, not an arrow: Socket.IO calls the adapter option with `new`.
  // biome-ignore lint/complexity/useArrowFunction: must be constructible
  return function (nsp: Namespace) {
    const adapter = factory(nsp);
    const addAll = adapter.addAll.bind(adapter);
    adapter.addAll = (id, rooms) => {
      const created = [...rooms].filter(
        (room) => room !== id && !adapter.sids.has(room) && !adapter.rooms.has(room),
      );
      const added = addAll(id, rooms);
      if (created.length === 0 || sub.status !== "ready") return added;
      const subscribed = Promise.all(
        created.map((room) => sub.ssubscribe(`${channelPrefix}#${nsp.name}#${room}#`)),
      );
      return withTimeout(Promise.all([added, subscribed]), SUBSCRIBE_WAIT_MS).then(
        () => undefined,
        () => undefined,
      );
    };
    return adapter;
  };
}
