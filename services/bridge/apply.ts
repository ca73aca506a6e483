import type { Server } from "socket.io";
import type { BridgeMessage } from "./message.js";

/**
 * Carries out one python-socketio message on THIS gateway's sockets only (`local`): every gateway
 * has its own subscription and receives every message, exactly as every python-socketio server
 * does, and each Socket.IO client is connected to exactly one gateway, so each client gets each
 * emit once. Nothing here goes through the backplane.
 *
 * A namespace this gateway does not have has no sockets here: the message is a no-op, and no
 * namespace is created for it (a message on the queue must not be able to create namespaces).
 */
export function applyLocally(io: Server, message: BridgeMessage): void {
  const namespace = io._nsps.get(message.namespace);
  if (namespace === undefined) return;
  switch (message.method) {
    case "emit": {
      let target = namespace.local;
      if (message.rooms !== null) target = target.to(message.rooms);
      if (message.skipSids.length > 0) target = target.except(message.skipSids);
      target.emit(message.event, ...message.args);
      return;
    }
    case "disconnect":
      // python-socketio's disconnect leaves the namespace, not the connection: no close.
      namespace.local.in(message.sid).disconnectSockets(false);
      return;
    case "enter_room":
      namespace.local.in(message.sid).socketsJoin(message.room);
      return;
    case "leave_room":
      namespace.local.in(message.sid).socketsLeave(message.room);
      return;
    case "close_room":
      namespace.local.in(message.room).socketsLeave(message.room);
      return;
    case "callback":
      // An acknowledgement travelling back to the python-socketio server that asked for it.
      return;
  }
}
