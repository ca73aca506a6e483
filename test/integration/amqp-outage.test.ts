import { createServer } from "node:http";
import amqp from "amqplib";
import { Server } from "socket.io";
import { describe, expect, it, onTestFinished } from "vitest";
import { type AmqpAdapter, createAmqpAdapter } from "../../adapters/amqp/index.js";
import { nextEvent, recordingLogger, startAmqpCluster } from "../support/amqp-helpers.js";
import { amqpUrl } from "../support/brokers.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";

describe("amqp adapter: broker connection loss", () => {
  it("keeps local emits working, drops and counts publishes, then restores bindings and resumes", async () => {
    const url = await amqpUrl();
    const broker = new URL(url);
    const proxy = await TcpProxy.start(broker.hostname, Number(broker.port || 5672));
    onTestFinished(() => proxy.close());
    const viaProxy = `${broker.protocol}//${broker.username}:${broker.password}@127.0.0.1:${proxy.port}${broker.pathname}`;
    const cluster = await startAmqpCluster({
      nodes: 2,
      urlFor: (i) => (i === 1 ? viaProxy : url),
      adapter: {
        heartbeatIntervalMs: 300,
        heartbeatTimeoutMs: 1_500,
        reconnectMinDelayMs: 50,
        reconnectMaxDelayMs: 400,
      },
      perNode: (i) => (i === 1 ? { connectionFactory: () => amqp.connect(viaProxy) } : {}),
    });
    const c0 = await cluster.client(0);
    const c1 = await cluster.client(1);
    await cluster.servers[1]
      ?.of("/")
      .sockets.get(c1.id ?? "")
      ?.join("R");
    const node1 = cluster.adapter(1);
    const bindingsBefore = node1.stats().bindings;

    proxy.cut();
    await waitFor(() => !node1.connected, {
      timeoutMs: 5_000,
      message: "node 1 notices the outage",
    });
    const local = nextEvent(c1, "during");
    cluster.servers[1]?.emit("during", "local still works");
    expect(await local).toBe("local still works");
    expect(node1.stats().dropped).toBeGreaterThan(0);
    await waitFor(async () => (await node1.serverCount()) === 1, {
      timeoutMs: 5_000,
      message: "node 1 alone after heartbeat timeout",
    });

    proxy.restore();
    await waitFor(() => node1.connected, { timeoutMs: 10_000, message: "node 1 reconnects" });
    expect(node1.stats().reconnects).toBeGreaterThanOrEqual(1);
    expect(node1.stats().bindings).toBe(bindingsBefore);
    await waitFor(
      async () =>
        (await cluster.adapter(0).serverCount()) === 2 && (await node1.serverCount()) === 2,
      { timeoutMs: 5_000, message: "both nodes count each other again" },
    );

    const inRoom = nextEvent(c1, "room");
    cluster.servers[0]?.to("R").emit("room", "after");
    expect(await inRoom).toBe("after");
    const toId = nextEvent(c1, "direct");
    cluster.servers[0]?.to(c1.id ?? "").emit("direct", 1);
    expect(await toId).toBe(1);
    const back = nextEvent(c0, "back");
    cluster.servers[1]?.emit("back", "from node 1");
    expect(await back).toBe("from node 1");
  });

  it("without a connectionFactory a lost connection leaves the node local-only and reports it", async () => {
    const broker = new URL(await amqpUrl());
    const proxy = await TcpProxy.start(broker.hostname, Number(broker.port || 5672));
    onTestFinished(() => proxy.close());
    const viaProxy = `${broker.protocol}//${broker.username}:${broker.password}@127.0.0.1:${proxy.port}${broker.pathname}`;
    const errors: string[] = [];
    const cluster = await startAmqpCluster({
      nodes: 1,
      urlFor: () => viaProxy,
      adapter: {
        reconnectMinDelayMs: 20,
        reconnectMaxDelayMs: 50,
        onError: (e) => errors.push(e.code),
      },
    });
    const client = await cluster.client(0);
    proxy.cut();
    await waitFor(() => errors.length > 0 && !cluster.adapter(0).connected, {
      timeoutMs: 5_000,
      message: "error reported",
    });
    expect(errors[0]).toBe("SWB_ERR_BROKER_CONNECTION");
    const got = nextEvent(client, "x");
    cluster.servers[0]?.emit("x", 1);
    expect(await got).toBe(1);
  });
});

describe("amqp adapter: a connection closed before use", () => {
  it("switches to connectionFactory instead of retrying the dead connection", async () => {
    const dead = await amqp.connect(await amqpUrl());
    await dead.close();
    const cluster = await startAmqpCluster({ nodes: 1 });
    let ownedClosed = 0;
    const io = new Server(createServer(), {
      adapter: createAmqpAdapter(dead, {
        exchange: cluster.exchange,
        reconnectMinDelayMs: 20,
        logger: recordingLogger(),
        connectionFactory: async () => {
          const owned = await amqp.connect(await amqpUrl());
          owned.on("close", () => ownedClosed++);
          return owned;
        },
      }),
    });
    onTestFinished(() => io.close());
    const adapter = io.of("/").adapter as unknown as AmqpAdapter;
    await waitFor(() => adapter.connected, {
      timeoutMs: 5_000,
      message: "recovered through connectionFactory",
    });
    await waitFor(async () => (await cluster.adapter(0).serverCount()) === 2, {
      timeoutMs: 5_000,
      message: "peer sees it",
    });
    await io.close();
    await waitFor(() => ownedClosed === 1, {
      timeoutMs: 3_000,
      message: "the connection it opened is closed with it",
    });
  });
});
