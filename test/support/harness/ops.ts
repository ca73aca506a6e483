import type { Server } from "socket.io";
import {
  type ControlOps,
  type ReceivedServerEvent,
  SECOND_NAMESPACE,
  SERVER_EVENT_ASK,
  SERVER_EVENT_RECORD,
  type Selection,
  type ServerAskReply,
  type SocketSnapshot,
  THROWING_PREFIX,
} from "./protocol.js";

type Handlers = {
  [Op in keyof ControlOps]: (args: ControlOps[Op]["args"]) => Promise<ControlOps[Op]["result"]>;
};

/**
 * The server-side half of the control channel: listeners that record server-side events, the
 * second namespace, and one handler per op of `ControlOps`, each calling the public Socket.IO API
 * of this gateway's `io`, so that the backplane under test carries it to the other processes.
 */
export function createControl(
  io: Server,
  info: { gatewayId: string },
): (op: string, args: unknown) => Promise<unknown> {
  const received: ReceivedServerEvent[] = [];
  // First: an application listener that throws (THROWING_PREFIX), before the recording ones.
  for (const event of [SERVER_EVENT_RECORD, SERVER_EVENT_ASK]) {
    io.on(event, (first: unknown) => {
      if (typeof first === "string" && first.startsWith(THROWING_PREFIX)) {
        throw new Error(`a listener of ${event} threw on purpose`);
      }
    });
  }
  io.on(SERVER_EVENT_RECORD, (...args: unknown[]) => {
    received.push({ event: SERVER_EVENT_RECORD, args });
  });
  io.on(SERVER_EVENT_ASK, (...args: unknown[]) => {
    const ack = args.pop() as (reply: ServerAskReply) => void;
    received.push({ event: SERVER_EVENT_ASK, args });
    ack({ gateway: info.gatewayId, args });
  });
  io.of(SECOND_NAMESPACE).on("connection", (socket) => {
    socket.on("whoami", (ack: unknown) => {
      if (typeof ack === "function") ack({ id: socket.id, gateway: info.gatewayId, rooms: [] });
    });
  });

  const select = (s: Selection) => {
    let operator = io
      .of(s.nsp ?? "/")
      .to(s.to ?? [])
      .except(s.except ?? []);
    if (s.local) operator = operator.local;
    return operator;
  };

  const handlers: Handlers = {
    info: async () => ({ gatewayId: info.gatewayId, pid: process.pid }),
    emit: async (a) => {
      const operator = a.volatile ? select(a).volatile : select(a);
      operator.emit(a.event, ...a.args.map(reviveBuffers));
      return true;
    },
    emitWithAck: async (a) =>
      (await select(a)
        .timeout(a.timeoutMs)
        .emitWithAck(a.event, ...a.args.map(reviveBuffers))) as unknown[],
    fetchSockets: async (a) => {
      const operator = a.timeoutMs === undefined ? select(a) : select(a).timeout(a.timeoutMs);
      const sockets = await operator.fetchSockets();
      return sockets.map(
        (socket): SocketSnapshot => ({
          id: socket.id,
          rooms: [...socket.rooms],
          data: socket.data,
          handshake: {
            address: socket.handshake.address,
            url: socket.handshake.url,
            query: { ...socket.handshake.query },
            auth: { ...socket.handshake.auth },
            headers: { ...socket.handshake.headers },
          },
        }),
      );
    },
    socketsJoin: async (a) => {
      select(a).socketsJoin(a.rooms);
      return true;
    },
    socketsLeave: async (a) => {
      select(a).socketsLeave(a.rooms);
      return true;
    },
    disconnectSockets: async (a) => {
      select(a).disconnectSockets(a.close);
      return true;
    },
    setData: async (a) => {
      const socket = io.of(a.nsp ?? "/").sockets.get(a.socketId);
      if (!socket) return false;
      socket.data = a.data;
      return true;
    },
    serverSideEmit: async (a) => {
      io.serverSideEmit(SERVER_EVENT_RECORD, ...a.args);
      return true;
    },
    serverSideEmitWithAck: async (a) =>
      (await io.serverSideEmitWithAck(SERVER_EVENT_ASK, ...a.args)) as ServerAskReply[],
    serverSideReceived: async () => received,
    serverCount: async (a) => io.of(a?.nsp ?? "/").adapter.serverCount(),
  };

  return (op, args) => {
    if (!Object.hasOwn(handlers, op)) return Promise.reject(new Error(`unknown op "${op}"`));
    const handler = handlers[op as keyof Handlers] as (args: unknown) => Promise<unknown>;
    return handler(args);
  };
}

/** JSON IPC turns a Buffer into `{type:"Buffer", data:[…]}`: turn it back, at any depth. */
export function reviveBuffers(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reviveBuffers);
  if (typeof value !== "object" || value === null) return value;
  const record = value as Record<string, unknown>;
  if (record.type === "Buffer" && Array.isArray(record.data) && Object.keys(record).length === 2) {
    return Buffer.from(record.data as number[]);
  }
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, reviveBuffers(v)]));
}
