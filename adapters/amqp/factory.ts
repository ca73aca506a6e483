import type { ChannelModel } from "amqplib";
import type { Namespace } from "socket.io";
import { AmqpAdapter } from "./adapter.js";
import { type AmqpAdapterOptions, assertConnection, resolveAdapterOptions } from "./options.js";
import { AmqpTransport } from "./transport.js";

/**
 * Returns `(nsp) => adapter`, like `@socket.io/redis-adapter`'s createAdapter:
 * `new Server({ adapter: createAmqpAdapter(connection, opts) })`.
 *
 * All namespaces of the returned factory share one transport (two channels and
 * one queue on `connection`), released when the last of them closes. The
 * `connection` itself stays yours: it is never closed here. For recovery from
 * a lost connection pass `connectionFactory` (see AmqpAdapterOptions).
 */
export function createAmqpAdapter(
  connection: ChannelModel,
  options: AmqpAdapterOptions = {},
): (nsp: Namespace) => AmqpAdapter {
  assertConnection(connection);
  const opts = resolveAdapterOptions(options);
  let shared: { transport: AmqpTransport; users: number } | undefined;
  // A plain function, not an arrow: Socket.IO calls it with `new`.
  return function amqpAdapter(nsp: Namespace): AmqpAdapter {
    shared ??= { transport: new AmqpTransport(connection, opts, true), users: 0 };
    const current = shared;
    current.users++;
    let released = false;
    const release = async (): Promise<boolean> => {
      if (released) return false;
      released = true;
      if (--current.users > 0) return false;
      if (shared === current) shared = undefined;
      await current.transport.close();
      return true;
    };
    return new AmqpAdapter(nsp, current.transport, opts, release);
  };
}
