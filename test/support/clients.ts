import { io, type ManagerOptions, type Socket, type SocketOptions } from "socket.io-client";
import { waitFor } from "./wait.js";

const open = new Set<Socket>();

/** A Socket.IO client, connected; closed by `closeAllClients()` (call it in afterEach). */
export async function connectClient(
  url: string,
  options: Partial<ManagerOptions & SocketOptions> = {},
): Promise<Socket> {
  const socket = io(url, {
    transports: ["websocket"],
    forceNew: true,
    reconnection: false,
    ...options,
  });
  open.add(socket);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`client could not connect to ${url}`)), 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  return socket;
}

export function closeAllClients(): void {
  for (const socket of open) socket.disconnect();
  open.clear();
}

/** Emits with an ack and resolves with the ack's first argument. */
export function request<T = unknown>(
  socket: Socket,
  event: string,
  ...args: unknown[]
): Promise<T> {
  return socket.timeout(10_000).emitWithAck(event, ...args) as Promise<T>;
}

/** Collects every `event` a socket receives, in order. */
export function collect<T = unknown>(socket: Socket, event: string): T[] {
  const received: T[] = [];
  socket.on(event, (data: T) => received.push(data));
  return received;
}

export interface WhoAmI {
  id: string;
  gateway: string;
  rooms: string[];
}

export const whoami = (socket: Socket) => request<WhoAmI>(socket, "whoami");

/**
 * Connects clients until `workers` distinct gateway ids hold at least one (cluster workers);
 * a worker still starting gets its first client once it is up.
 */
export async function clientsOnEveryWorker(
  url: string,
  workers: number,
  { maxClients = 200 } = {},
): Promise<Map<string, Socket[]>> {
  const byGateway = new Map<string, Socket[]>();
  let count = 0;
  await waitFor(
    async () => {
      if (count >= maxClients) {
        throw new Error(`${maxClients} clients landed on ${byGateway.size} of ${workers} workers`);
      }
      count += 1;
      const socket = await connectClient(url);
      const me = await whoami(socket);
      byGateway.set(me.gateway, [...(byGateway.get(me.gateway) ?? []), socket]);
      return byGateway.size >= workers;
    },
    { timeoutMs: 30_000, intervalMs: 50, message: `clients on ${workers} workers` },
  );
  return byGateway;
}
