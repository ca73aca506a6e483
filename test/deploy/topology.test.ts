import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io, type Socket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { createPublisher } from "../../services/publisher/index.js";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { request, type WhoAmI, whoami } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { prepareBrokers, type Received, tally, uniqueNames } from "../support/publish.js";
import { waitFor } from "../support/wait.js";
import { type Balancer, serversBySession, startBalancer } from "./haproxy.js";

/**
 * docker-compose.yml's topology without Docker: three real gateway processes on the Redis
 * backplane (compose's default), consuming the RabbitMQ publish queue, behind the Debian haproxy
 * binary running deploy/haproxy/haproxy.cfg. Every client comes from 127.0.0.1, so whatever
 * spreads them and keeps them sticky is the balancer's cookie, not their address.
 */

const CLIENTS = 24;
const DRAIN_MS = 3000; // longer than haproxy needs to see /readyz fail (fall 2 x fastinter 500 ms)

interface Cluster {
  names: ReturnType<typeof uniqueNames>;
  gateways: GatewayProcess[];
  ids: string[];
  balancer: Balancer;
}

async function startCluster(cleanup: (task: () => Promise<void>) => void): Promise<Cluster> {
  const names = uniqueNames();
  await prepareBrokers(names, cleanup);
  const suffix = randomBytes(3).toString("hex");
  const ids = [1, 2, 3].map((n) => `gateway-${n}-${suffix}`);
  const gateways = await Promise.all(
    ids.map(async (id) => {
      const gateway = await startGateway({
        env: {
          GATEWAY_ID: id,
          BACKPLANE: "redis",
          REDIS_URL: await redisUrl(),
          AMQP_URL: await amqpUrl(),
          INGEST_AMQP_QUEUE: names.queue,
          INGEST_REDIS_STREAM: names.stream,
          SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
        },
      });
      cleanup(() => gateway.stop());
      return gateway;
    }),
  );
  const balancer = await startBalancer(gateways.map((g) => `127.0.0.1:${g.port}`));
  cleanup(() => balancer.stop());
  return { names, gateways, ids, balancer };
}

/** A plain Socket.IO client through the balancer; it keeps the balancer's cookie. */
function client(url: string, options: Parameters<typeof io>[1] = {}): Socket {
  const socket = io(url, {
    forceNew: true,
    withCredentials: true, // the Node client keeps cookies only with this
    reconnection: false,
    ...options,
  });
  onTestFinished(() => {
    socket.disconnect();
  });
  return socket;
}

function connected(socket: Socket, timeoutMs = 15_000): Promise<void> {
  if (socket.connected) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("client did not connect")), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe("the compose topology without Docker: three gateways behind the repository's haproxy.cfg", {
  timeout: 120_000,
}, () => {
  let cluster: Cluster;
  const stops: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    cluster = await startCluster((task) => stops.push(task));
  }, 90_000);
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  });

  it("HTTP long-polling clients keep every request of their session on one gateway", async () => {
    const sockets = Array.from({ length: CLIENTS }, () =>
      client(cluster.balancer.url, { transports: ["polling"] }),
    );
    await Promise.all(sockets.map((s) => connected(s)));
    const disconnects: string[] = [];
    for (const socket of sockets) socket.on("disconnect", (reason) => disconnects.push(reason));

    // Several round trips each (POST for the event, the held GET for the ack): every one would
    // fail with "Session ID unknown" on any gateway but the session's own.
    const first = await Promise.all(sockets.map(whoami));
    for (let round = 0; round < 3; round++) {
      const again = await Promise.all(sockets.map(whoami));
      expect(again.map((me) => `${me.id}@${me.gateway}`)).toEqual(
        first.map((me) => `${me.id}@${me.gateway}`),
      );
    }
    expect(disconnects).toEqual([]);
    expect(new Set(first.map((me) => me.gateway))).toEqual(new Set(cluster.ids));

    // The balancer's own log agrees: each session's requests all went to one server.
    const engineIds = sockets.map((s) => s.io.engine.id);
    const sessions = await waitFor(
      () => {
        const seen = serversBySession(cluster.balancer.output());
        return engineIds.every((id) => seen.has(id)) ? seen : undefined;
      },
      { message: "every session's requests in the balancer's log" },
    );
    for (const id of engineIds) {
      expect(sessions.get(id)?.size, `servers that answered session ${id}`).toBe(1);
    }
  });

  it("the balancer routes by its cookie: a session's id is unknown behind another gateway's cookie", async () => {
    const base = `${cluster.balancer.url}/socket.io/?EIO=4&transport=polling`;
    const handshake = await fetch(base);
    expect(handshake.status).toBe(200);
    const cookie = handshake.headers.getSetCookie().find((c) => c.startsWith("SWB_GW="));
    const server = /^SWB_GW=([^;]+)/.exec(cookie ?? "")?.[1];
    expect(server).toMatch(/^gateway-[123]$/);
    const sid = /"sid":"([^"]+)"/.exec(await handshake.text())?.[1];
    expect(sid).toBeTruthy();

    // POST the Socket.IO CONNECT packet ("40") in that session, carrying one cookie or the other.
    const post = (gateway: string) =>
      fetch(`${base}&sid=${sid}`, {
        method: "POST",
        headers: { cookie: `SWB_GW=${gateway}`, "content-type": "text/plain;charset=UTF-8" },
        body: "40",
      });
    const other = server === "gateway-1" ? "gateway-2" : "gateway-1";
    const elsewhere = await post(other);
    expect(elsewhere.status).toBe(400); // engine.io: Session ID unknown
    await elsewhere.text();
    const home = await post(server!);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe("ok");
  });

  it("the balancer serves every haproxy metric the Grafana dashboard charts, per gateway", async () => {
    const metrics = await (await fetch(`${cluster.balancer.statsUrl}/metrics`)).text();
    const dashboard = readFileSync(
      fileURLToPath(new URL("../../deploy/grafana/dashboards/switchboard.json", import.meta.url)),
      "utf8",
    );
    const charted = new Set([...dashboard.matchAll(/\bhaproxy_[a-z0-9_]+/g)].map(([m]) => m));
    expect(charted.size).toBeGreaterThan(0);
    for (const name of charted) {
      for (const server of ["gateway-1", "gateway-2", "gateway-3"]) {
        expect(metrics, `${name} for ${server}`).toMatch(
          new RegExp(`^${name}\\{[^}]*server="${server}"`, "m"),
        );
      }
    }
  });

  it("clients that start on long-polling upgrade to WebSocket on the same gateway", async () => {
    const sockets = Array.from({ length: 12 }, () => client(cluster.balancer.url));
    await Promise.all(sockets.map((s) => connected(s)));
    // A WebSocket upgrade that reached another gateway would fail (unknown sid) and leave the
    // client on polling: every one must end up on websocket, with the same session.
    await waitFor(() => sockets.every((s) => s.io.engine.transport.name === "websocket"), {
      timeoutMs: 20_000,
      message: "every client upgraded to websocket",
    });
    const before = sockets.map((s) => s.id);
    const after = await Promise.all(sockets.map(whoami));
    expect(after.map((me) => me.id)).toEqual(before);
  });

  it("connections from one address spread over all three gateways, and a room broadcast reaches all of them", async () => {
    const room = `spread:${randomBytes(4).toString("hex")}`;
    const sockets: Socket[] = [];
    const received: unknown[][] = [];
    for (let i = 0; i < CLIENTS; i++) {
      const socket = client(cluster.balancer.url);
      await connected(socket);
      expect(await request(socket, "join", room)).toEqual({ ok: true });
      const inbox: unknown[] = [];
      socket.on("news", (data: unknown) => inbox.push(data));
      sockets.push(socket);
      received.push(inbox);
    }
    const where = await Promise.all(sockets.map(whoami));
    const perGateway = new Map<string, number>();
    for (const me of where) perGateway.set(me.gateway, (perGateway.get(me.gateway) ?? 0) + 1);
    expect([...perGateway.keys()].sort()).toEqual([...cluster.ids].sort());
    // Least-connections over one address: no gateway is left with a small share.
    for (const count of perGateway.values()) expect(count).toBeGreaterThanOrEqual(CLIENTS / 6);

    const [sender, ...others] = sockets;
    expect(
      await request(sender!, "publish", { room, event: "news", data: { text: "to all" } }),
    ).toEqual({ ok: true });
    await waitFor(() => received.slice(1).every((inbox) => inbox.length === 1), {
      message: "the broadcast at every other client",
    });
    expect(received[0]).toEqual([]);
    expect(others.length).toBe(CLIENTS - 1);
  });
});

describe("SIGTERM on one gateway behind the balancer", { timeout: 180_000 }, () => {
  it("moves its clients to the other two, and every command on the RabbitMQ publish queue arrives", async () => {
    const cluster = await startCluster(onTestFinished);
    const { names, gateways, ids, balancer } = cluster;
    const room = names.room;

    // Clients that reconnect through the balancer on their own and join the room again each time.
    const clients = Array.from({ length: CLIENTS }, () => {
      const socket = client(balancer.url, {
        reconnection: true,
        reconnectionDelay: 100,
        reconnectionDelayMax: 1000,
        randomizationFactor: 0.5,
      });
      const state = { socket, joined: 0, received: [] as Received[] };
      socket.on("connect", () => {
        socket.emit("join", room, (reply: { ok?: boolean }) => {
          if (reply?.ok) state.joined += 1;
        });
      });
      socket.on("message", (data: unknown, meta?: { id?: string }) =>
        state.received.push({ data, id: meta?.id }),
      );
      return state;
    });
    await waitFor(() => clients.every((c) => c.joined === 1), {
      timeoutMs: 30_000,
      message: "every client joined through the balancer",
    });
    const before = await Promise.all(clients.map((c) => whoami(c.socket)));

    const publisher = createPublisher({ via: "amqp", url: await amqpUrl(), queue: names.queue });
    onTestFinished(() => publisher.close());
    let sent = 0;
    const publish = () => {
      const n = sent++;
      return publisher.publish({ id: `c-${n}`, rooms: [room], event: "message", data: { n } });
    };

    // Warm up until one gateway is the queue's (single) active consumer: that one is stopped.
    for (let i = 0; i < 20; i++) await publish();
    const ingestedBy = async (gateway: GatewayProcess) => {
      const text = await fetch(`${gateway.url}/metrics`).then((r) => r.text());
      const line = text
        .split("\n")
        .find(
          (l) =>
            l.startsWith("switchboard_ingest_commands_total{") &&
            l.includes('path="amqp"') &&
            l.includes('outcome="delivered"'),
        );
      return line ? Number(line.split(" ").at(-1)) : 0;
    };
    const victim = await waitFor(
      async () => {
        for (const gateway of gateways) if ((await ingestedBy(gateway)) > 0) return gateway;
        return undefined;
      },
      { timeoutMs: 30_000, message: "an active consumer of the publish queue" },
    );
    const victimId = ids[gateways.indexOf(victim)]!;
    const moved = clients.filter((_, i) => before[i]!.gateway === victimId);
    const stayed = clients.filter((_, i) => before[i]!.gateway !== victimId);
    expect(moved.length).toBeGreaterThan(0);
    expect(stayed.length).toBeGreaterThan(0);

    // Commands keep flowing while the victim drains, closes its clients and exits, until every
    // one of its clients is back (bounded in count and time).
    victim.signal("SIGTERM");
    const deadline = Date.now() + 60_000;
    let back = false;
    while (!back && sent < 5000 && Date.now() < deadline) {
      await publish();
      await delay(10); // pacing of the publisher, not a wait for a condition
      back = !victim.isRunning() && moved.every((c) => c.joined >= 2 && c.socket.connected);
    }
    expect(back, `victim exited and its ${moved.length} clients rejoined`).toBe(true);
    expect((await victim.exited).code).toBe(0);
    const duringFailover = sent;

    // The balancer took the victim out of rotation; its clients are on the other two now.
    expect((await balancer.servers()).get(`gateway-${ids.indexOf(victimId) + 1}`)).toMatch(
      /DOWN|MAINT/,
    );
    const after = await Promise.all(moved.map((c) => whoami(c.socket)));
    for (const me of after as WhoAmI[]) expect(me.gateway).not.toBe(victimId);
    expect(new Set(after.map((me) => me.gateway)).size).toBeGreaterThanOrEqual(1);

    // And after the failover, everyone receives again.
    for (let i = 0; i < 20; i++) await publish();
    const total = sent;
    expect(duringFailover).toBeGreaterThan(20);

    // Nothing lost on the durable path: the clients that never moved hold every command; the
    // moved ones hold every command published after they were back.
    await waitFor(() => stayed.every((c) => tally(c.received).distinct === total), {
      timeoutMs: 60_000,
      message: `${total} commands at every client that stayed`,
    }).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(stayed.map((c) => tally(c.received)))}`);
    });
    for (const c of stayed) expect(tally(c.received).mismatched).toBe(0);
    await waitFor(
      () =>
        moved.every((c) => {
          const ids = new Set(c.received.map((r) => r.id));
          for (let n = duringFailover; n < total; n++) if (!ids.has(`c-${n}`)) return false;
          return true;
        }),
      { timeoutMs: 30_000, message: "the commands after the failover at every moved client" },
    );
  });
});
