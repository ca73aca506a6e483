import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import amqp, { type ChannelModel } from "amqplib";
import { Server } from "socket.io";
import { type Socket as ClientSocket, io as connectClient } from "socket.io-client";
import { onTestFinished } from "vitest";
import type { AmqpAdapterOptions, AmqpLogger } from "../../adapters/amqp/index.js";
import { type AmqpAdapter, createAmqpAdapter } from "../../adapters/amqp/index.js";
import { amqpUrl } from "./brokers.js";
import { nextEvent as sharedNextEvent, waitFor } from "./wait.js";

/** An exchange name of its own per test, so tests can run in parallel on one broker. */
export function uniqueExchange(): string {
  return `switchboard.test.${randomBytes(5).toString("hex")}`;
}

/** Resolves with the next `event` on `socket` (its first argument), or rejects after `timeoutMs`. */
export async function nextEvent<T = unknown>(
  socket: ClientSocket,
  event: string,
  timeoutMs = 5_000,
): Promise<T> {
  const [first] = await sharedNextEvent<[T]>(
    socket as unknown as Parameters<typeof sharedNextEvent<[T]>>[0],
    event,
    timeoutMs,
  );
  return first;
}

/** A logger that records lines for assertions. */
export function recordingLogger(): AmqpLogger & {
  lines: { level: string; fields: object; message: string }[];
} {
  const lines: { level: string; fields: object; message: string }[] = [];
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields, message });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export interface AmqpCluster {
  exchange: string;
  servers: Server[];
  connections: ChannelModel[];
  ports: number[];
  adapter(index: number, nsp?: string): AmqpAdapter;
  /** Connects a client to node `index`; closed when the test finishes. */
  client(index: number, nsp?: string): Promise<ClientSocket>;
}

export interface ClusterOptions {
  nodes?: number;
  adapter?: AmqpAdapterOptions;
  /** Per-node overrides of adapter options. */
  perNode?: (index: number) => AmqpAdapterOptions;
  namespaces?: string[];
  /** Broker URL per node (e.g. through a TcpProxy); defaults to amqpUrl(). */
  urlFor?: (index: number) => string;
}

/** N Socket.IO servers in this process, each on its own amqplib connection; torn down at test end. */
export async function startAmqpCluster(options: ClusterOptions = {}): Promise<AmqpCluster> {
  const nodes = options.nodes ?? 3;
  const exchange = options.adapter?.exchange ?? uniqueExchange();
  const servers: Server[] = [];
  const connections: ChannelModel[] = [];
  const ports: number[] = [];
  const clients: ClientSocket[] = [];
  const url = await amqpUrl();
  onTestFinished(async () => {
    for (const c of clients) c.disconnect();
    await Promise.all(servers.map((s) => s.close()));
    const admin = await amqp.connect(url);
    const ch = await admin.createChannel();
    await ch.deleteExchange(exchange);
    await admin.close();
    await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
  });
  for (let i = 0; i < nodes; i++) {
    const connection = await amqp.connect(options.urlFor?.(i) ?? url);
    // A cut connection emits 'error'; the adapter logs it, but it detaches at close.
    connection.on("error", () => undefined);
    connections.push(connection);
    const http = createServer();
    const io = new Server(http, {
      adapter: createAmqpAdapter(connection, {
        logger: recordingLogger(),
        ...options.adapter,
        ...options.perNode?.(i),
        exchange,
      }),
    });
    for (const nsp of options.namespaces ?? []) io.of(nsp);
    servers.push(io);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    ports.push((http.address() as AddressInfo).port);
  }
  const cluster: AmqpCluster = {
    exchange,
    servers,
    connections,
    ports,
    adapter: (index, nsp = "/") => servers[index]?.of(nsp).adapter as unknown as AmqpAdapter,
    async client(index, nsp = "/") {
      const socket = connectClient(`http://127.0.0.1:${ports[index]}${nsp}`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      clients.push(socket);
      await nextEvent(socket, "connect");
      return socket;
    },
  };
  for (const nsp of ["/", ...(options.namespaces ?? [])]) {
    await waitFor(
      async () =>
        (await Promise.all(servers.map((_, i) => cluster.adapter(i, nsp).serverCount()))).every(
          (n) => n === nodes,
        ),
      { timeoutMs: 10_000, message: `every node of ${nsp} sees ${nodes} servers` },
    );
  }
  return cluster;
}
