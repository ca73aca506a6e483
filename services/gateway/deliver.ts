import type { Server } from "socket.io";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import type { PublishCommand } from "../../core/publish-command.js";

/** What clients receive after `data` when the command has an `id`. */
export interface DeliveryMeta {
  id: string;
}

/**
 * The one place every external publishing path ends (queue, stream, HTTP): emits the command's
 * `event` to its `rooms` minus `except` in its `namespace`, through the gateway's adapter, that
 * is the backplane. Returns once the broadcast was handed to the adapter. Throws
 * SWB_ERR_INVALID_ARGUMENT for a namespace not in `served` (NAMESPACES), a command that will never
 * be deliverable: the queue paths dead-letter it at once, HTTP answers 400. Socket.IO always has
 * `/`, even where NAMESPACES leaves it out and no client can connect to it: `served`, not the
 * server's namespaces, decides.
 *
 * Clients receive `data` (null when absent) as the event's first argument and, when the command
 * has an `id`, `{id}` as a second one: `socket.on("message", (data, meta) => …)`. A one-argument
 * handler is unaffected, and a command without `id` is the plain one-argument event of
 * docs/PROTOCOL.md. At-least-once paths may deliver a command twice: both copies carry the same id.
 */
export function deliver(io: Server, command: PublishCommand, served: ReadonlySet<string>): void {
  const name = command.namespace ?? "/";
  // io.of() would create a namespace it does not know: adapter state, subscriptions or bindings
  // and heartbeats on every gateway, forever. The gateway creates those of NAMESPACES at start.
  const namespace = served.has(name) ? io._nsps.get(name) : undefined;
  if (!namespace) {
    throw new SwitchboardError(
      ErrorCode.INVALID_ARGUMENT,
      `namespace ${JSON.stringify(name)} is not served (NAMESPACES)`,
    );
  }
  let target = namespace.except(command.except ?? []);
  if (command.rooms !== undefined) target = target.to(command.rooms);
  const data = command.data ?? null;
  if (command.id === undefined) target.emit(command.event, data);
  else target.emit(command.event, data, { id: command.id } satisfies DeliveryMeta);
}
