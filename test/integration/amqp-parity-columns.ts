/**
 * The columns of the parity test (amqp-parity.test.ts): the same cluster of
 * in-process Socket.IO servers, one broker connection per server, on
 * @socket.io/redis-adapter (the reference) or on the AMQP adapter with room
 * routing off (its default) and on.
 */
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createAdapter as createRedisAdapter } from "@socket.io/redis-adapter";
import amqp, { type ChannelModel } from "amqplib";
import { Redis } from "ioredis";
import { Server, type Socket as ServerSocket } from "socket.io";
import { MessageType } from "socket.io-adapter";
import { type Socket as ClientSocket, io as connectClient } from "socket.io-client";
import { encodeMessage } from "../../adapters/amqp/codec.js";
import { createAmqpAdapter } from "../../adapters/amqp/index.js";
import { allKey } from "../../adapters/amqp/routing.js";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { waitFor } from "../support/wait.js";

/** The part of an adapter the parity cases look at, on both implementations. */
export interface ParityAdapter {
  requests: Map<string, unknown>;
  allRooms(): Promise<Set<unknown>>;
  serverCount(): Promise<number>;
}

export interface ParityCluster {
  servers: Server[];
  adapter(index: number): ParityAdapter;
  /** A client of server `index`, until `disconnectClients()`. */
  client(index: number): Promise<ClientSocket>;
  disconnectClients(): void;
  /** The server side of `client` on server `index`. */
  serverSocket(index: number, client: ClientSocket): ServerSocket;
  /** Adds a cluster member that every server counts but that answers no request. */
  addSilentMember(): Promise<void>;
  /** Closes the servers, then the broker clients and what the test declared. */
  close(): Promise<void>;
}

export type CaseId = "unawaited join then remote emit";

export interface Column {
  name: string;
  /**
   * Cases where this column differs from the reference by a documented
   * option: the case then checks the documented guarantee instead. The text
   * quotes docs/BACKPLANES.md.
   */
  documented: Partial<Record<CaseId, string>>;
  start(options: { nodes: number; requestsTimeoutMs: number }): Promise<ParityCluster>;
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

export const columns: Column[] = [
  {
    name: "@socket.io/redis-adapter (reference)",
    documented: {},
    async start({ nodes, requestsTimeoutMs }) {
      const url = await redisUrl();
      const key = `parity.${randomBytes(5).toString("hex")}`;
      const clients: Redis[] = [];
      const redis = () => {
        const client = new Redis(url, { lazyConnect: false });
        clients.push(client);
        return client;
      };
      const steps: (() => unknown)[] = [];
      steps.push(() => {
        for (const client of clients) client.disconnect();
      });
      return startCluster(
        steps,
        nodes,
        () => createRedisAdapter(redis(), redis(), { key, requestsTimeout: requestsTimeoutMs }),
        async () => {
          // A subscriber of the request channel is a server to the Redis adapter (PUBSUB NUMSUB).
          await redis().subscribe(`${key}-request#/#`);
        },
      );
    },
  },
  amqpColumn("amqp adapter (default: roomRouting off)", false, {}),
  amqpColumn("amqp adapter (roomRouting: true)", true, {
    "unawaited join then remote emit":
      "with roomRouting: true a broadcast from another node reaches a newly joined socket once the promise returned by socket.join(room) has resolved",
  }),
];

function amqpColumn(name: string, roomRouting: boolean, documented: Column["documented"]): Column {
  return {
    name,
    documented,
    async start({ nodes, requestsTimeoutMs }) {
      const url = await amqpUrl();
      const exchange = `switchboard.parity.${randomBytes(5).toString("hex")}`;
      const connections: ChannelModel[] = [];
      const timers: NodeJS.Timeout[] = [];
      const steps: (() => unknown)[] = [];
      steps.push(async () => {
        for (const timer of timers) clearInterval(timer);
        const admin = await amqp.connect(url);
        await (await admin.createChannel()).deleteExchange(exchange);
        await admin.close();
        await Promise.all(connections.map((c) => c.close().catch(() => undefined)));
      });
      const connect = async () => {
        const connection = await amqp.connect(url);
        connection.on("error", () => undefined);
        connections.push(connection);
        return connection;
      };
      const perNode: ChannelModel[] = [];
      for (let i = 0; i < nodes; i++) perNode.push(await connect());
      let next = 0;
      return startCluster(
        steps,
        nodes,
        () => {
          const connection = perNode[next++] as ChannelModel;
          const options = { exchange, requestsTimeoutMs, logger: quiet };
          // The default is what a drop-in gets; `roomRouting: true` is passed only when chosen.
          return createAmqpAdapter(connection, roomRouting ? { ...options, roomRouting } : options);
        },
        async () => {
          // A member that only heartbeats: counted by every node, answering nothing.
          const channel = await (await connect()).createChannel();
          await channel.assertExchange(exchange, "topic", { durable: true });
          const uid = `silent-${randomBytes(4).toString("hex")}`;
          const beat = () =>
            channel.publish(
              exchange,
              allKey("/"),
              encodeMessage({ uid, nsp: "/", type: MessageType.HEARTBEAT }),
            );
          beat();
          timers.push(setInterval(beat, 1_000));
        },
      );
    },
  };
}

type AdapterFactory = ReturnType<typeof createRedisAdapter>;

async function startCluster(
  steps: (() => unknown)[],
  nodes: number,
  adapterFor: (index: number) => AdapterFactory | ReturnType<typeof createAmqpAdapter>,
  silentMember: () => Promise<void>,
): Promise<ParityCluster> {
  const servers: Server[] = [];
  const ports: number[] = [];
  const clients: ClientSocket[] = [];
  const disconnectClients = () => {
    for (const client of clients.splice(0)) client.disconnect();
  };
  steps.push(async () => {
    disconnectClients();
    await Promise.all(servers.map((server) => server.close()));
  });
  for (let i = 0; i < nodes; i++) {
    const http = createServer();
    const io = new Server(http, { adapter: adapterFor(i) as AdapterFactory });
    servers.push(io);
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    ports.push((http.address() as AddressInfo).port);
  }
  const adapter = (index: number) => servers[index]?.of("/").adapter as unknown as ParityAdapter;
  const allSee = (count: number) =>
    waitFor(
      async () =>
        (await Promise.all(servers.map((_, i) => adapter(i).serverCount()))).every(
          (n) => n === count,
        ),
      { timeoutMs: 15_000, message: `every server counts ${count} servers` },
    );
  const close = async () => {
    for (const step of steps.splice(0).reverse()) await step();
  };
  await allSee(nodes).catch(async (err: unknown) => {
    await close();
    throw err;
  });
  return {
    servers,
    adapter,
    disconnectClients,
    close,
    async client(index) {
      const socket = connectClient(`http://127.0.0.1:${ports[index]}`, {
        transports: ["websocket"],
        forceNew: true,
        reconnection: false,
      });
      clients.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("connect_error", reject);
      });
      return socket;
    },
    serverSocket(index, client) {
      const socket = servers[index]?.of("/").sockets.get(client.id ?? "");
      if (!socket) throw new Error(`no socket ${client.id} on server ${index}`);
      return socket;
    },
    async addSilentMember() {
      await silentMember();
      await allSee(nodes + 1);
    },
  };
}
