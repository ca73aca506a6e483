import type { Namespace } from "socket.io";
import type { Logger } from "../core/logger.js";

/**
 * What a `serverSideEmit` from another node does when one of this node's listeners throws.
 *
 * Every adapter hands such an event to `nsp._onServerSideEmit(args)`, which is
 * `EventEmitter#emit`: a listener that throws skips the listeners after it, and the exception
 * goes up the adapter's message path, where each adapter does something else with it — an
 * unhandled rejection (@socket.io/redis-adapter's async request handler), an exception out of
 * the Redis client's or the IPC channel's event handler (the sharded and cluster adapters: the
 * process dies), a debug line (the streams adapter), a warning without the event (ours on
 * RabbitMQ, `amqp message handler threw`).
 *
 * Guarded, each listener runs on its own: one that throws (or returns a promise that rejects) is
 * logged with the namespace and the event name, and the others still run; the process and the
 * adapter carry on. A request (`serverSideEmitWithAck`) is answered by the first listener that
 * calls the ack; if the one that threw was the only one, this node does not answer and the
 * requester gets its timeout, as for a node that does not answer.
 */
const guarded = new WeakSet<Namespace>();

/** Installs the guard on `nsp` (once; later calls do nothing). */
export function guardServerSideEmit(nsp: Namespace, logger: Logger): void {
  if (guarded.has(nsp)) return;
  guarded.add(nsp);
  const target = nsp as unknown as { _onServerSideEmit?: (args: unknown[]) => void };
  if (typeof target._onServerSideEmit !== "function") {
    logger.warn(
      { nsp: nsp.name },
      "socket.io has no Namespace#_onServerSideEmit: serverSideEmit listeners are not guarded",
    );
    return;
  }
  const report = (event: unknown, err: unknown) =>
    logger.error(
      { err, nsp: nsp.name, event: String(event).slice(0, 200) },
      "serverSideEmit listener threw; the other listeners still ran",
    );
  const emit = target._onServerSideEmit;
  target._onServerSideEmit = (args) => {
    const [event, ...rest] = args;
    if (typeof event !== "string") return emit.call(nsp, args);
    // rawListeners: `once` wrappers remove themselves when called, as emit would do.
    for (const listener of nsp.rawListeners(event)) {
      try {
        const result: unknown = (listener as (...a: unknown[]) => unknown).apply(nsp, rest);
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
          (result as Promise<unknown>).then(undefined, (err: unknown) => report(event, err));
        }
      } catch (err) {
        report(event, err);
      }
    }
  };
}
