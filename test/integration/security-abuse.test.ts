import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { io } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { closeAllClients, connectClient, request } from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { nextEvent, waitFor } from "../support/wait.js";
import {
  metric,
  RECORD_SEPARATOR,
  rawPolling,
  rawWebSocket,
  rssBytes,
  scrape,
  startBystander,
} from "./security-helpers.js";

/**
 * Attacks on real gateway processes, each: the expected refusal, the offender alone affected,
 * a well-behaved client on the same gateway still served, and nothing growing without bound.
 */

const API_KEY = "abuse-test-key-0123";

async function publishOverHttp(gateway: GatewayProcess, command: object) {
  const res = await fetch(`${gateway.url}/v1/publish`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ v: 1, ...command }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("abuse of one gateway (Redis backplane)", () => {
  const suffix = randomBytes(4).toString("hex");
  const stream = `switchboard:test:abuse:${suffix}`;
  let gateway: GatewayProcess;
  let bystander: Awaited<ReturnType<typeof startBystander>>;
  let redis: Redis;

  beforeAll(async () => {
    redis = new Redis(await redisUrl());
    gateway = await startGateway({
      mode: "harness",
      env: {
        BACKPLANE: "redis",
        REDIS_URL: await redisUrl(),
        INGEST_REDIS_STREAM: stream,
        PUBLISH_API_KEYS: API_KEY,
        MAX_ROOMS_PER_SOCKET: "5",
        MAX_PAYLOAD_BYTES: "8192",
      },
    });
    bystander = await startBystander(gateway);
  });
  afterAll(async () => {
    bystander?.close();
    await gateway?.stop();
    await redis?.del(stream, `${stream}:dead`);
    redis?.disconnect();
  });
  afterEach(async () => {
    closeAllClients();
    await bystander.stillServed();
  });

  const socketsOnRoot = async () =>
    (await gateway.control("fetchSockets", { nsp: "/", local: true })) as unknown[];

  it("thousands of CONNECT packets in long-polling POSTs build no sockets and cost no memory", async () => {
    const before = await rssBytes(gateway);
    // As many as one POST can carry under MAX_PAYLOAD_BYTES (8 KiB here).
    const flood = Array.from({ length: 2500 }, () => "40").join(RECORD_SEPARATOR);
    for (let i = 0; i < 5; i++) {
      const session = await rawPolling(gateway.url);
      const res = await session.post(flood);
      await res.text();
      // The session is closed: its next poll gets the close, and the one after that is refused.
      await waitFor(
        async () => {
          const poll = await session.get();
          await poll.text();
          return poll.status === 400;
        },
        { message: "the flooding session to be closed" },
      );
    }
    // Only the bystander's two sockets exist on the namespace.
    expect(await socketsOnRoot()).toHaveLength(2);
    const text = await scrape(gateway);
    expect(
      metric(text, "switchboard_gateway_handshake_refusals_total", { code: "connect_flood" }),
    ).toBeGreaterThanOrEqual(5);
    // Unbounded, this was +560 MB; bounded, it is noise.
    expect((await rssBytes(gateway)) - before).toBeLessThan(64 * 1024 * 1024);
  });

  it("a second CONNECT for a namespace on one connection is refused, the first socket kept", async () => {
    const session = await rawPolling(gateway.url);
    // Both arrive before the first is admitted: the race a polling payload makes easy.
    expect(await (await session.post(`40${RECORD_SEPARATOR}40`)).text()).toBe("ok");
    const frames: string[] = [];
    await waitFor(
      async () => {
        frames.push(...(await (await session.get()).text()).split(RECORD_SEPARATOR));
        return frames.some((f) => f.startsWith("40{")) && frames.some((f) => f.startsWith("44"));
      },
      { message: "CONNECT and CONNECT_ERROR answers" },
    );
    expect(JSON.parse(frames.find((f) => f.startsWith("44"))?.slice(2) ?? "{}")).toEqual({
      message: "already connected to this namespace",
      data: { code: "duplicate_namespace" },
    });
    expect(await socketsOnRoot()).toHaveLength(3);
    // Socket.IO itself closes a connection that sends CONNECT for a namespace it is connected to.
    expect(await (await session.post("40")).text()).toBe("ok");
    await waitFor(async () => (await socketsOnRoot()).length === 2, {
      message: "the raw socket gone",
    });
  });

  it("a CONNECT flood over WebSocket closes that connection alone", async () => {
    const ws = await rawWebSocket(gateway.url);
    for (let i = 0; i < 200 && ws.socket.readyState === ws.socket.OPEN; i++) ws.send("40");
    expect(await ws.closed).toBeGreaterThan(0);
    await waitFor(async () => (await socketsOnRoot()).length === 2, {
      message: "no socket left by the flood",
    });
  });

  it("a flood past the rate limit gets rate_limited, then that client alone is disconnected", async () => {
    const client = await connectClient(gateway.url);
    const replies: unknown[] = [];
    const gone = nextEvent<[string]>(client, "disconnect", 15_000);
    for (let i = 0; i < 200 && client.connected; i++) {
      client.emit("whoami", (reply: unknown) => replies.push(reply));
    }
    expect((await gone)[0]).toBe("io server disconnect");
    expect(replies).toContainEqual({ error: "rate_limited" });
  });

  it("a packet over MAX_PAYLOAD_BYTES closes that connection, on WebSocket and on long-polling", async () => {
    const client = await connectClient(gateway.url);
    const gone = nextEvent<[string]>(client, "disconnect", 15_000);
    client.emit("publish", { room: "big:1", event: "m", data: "x".repeat(20_000) }, () => {});
    expect((await gone)[0]).toBe("transport close");
    const session = await rawPolling(gateway.url);
    expect((await session.post("40")).status).toBe(200);
    const res = await session.post(
      `42["publish",{"room":"big:1","event":"m","data":"${"x".repeat(20_000)}"}]`,
    );
    expect(res.status).toBe(413);
    await waitFor(
      async () => {
        const poll = await session.get();
        await poll.text();
        return poll.status === 400;
      },
      { message: "the polling session closed" },
    );
  });

  it("too many rooms for one socket is an ack error, the socket stays", async () => {
    const client = await connectClient(gateway.url);
    for (let i = 0; i < 5; i++)
      expect(await request(client, "join", `many:${i}`)).toEqual({ ok: true });
    expect(await request(client, "join", "many:5")).toEqual({ error: "too_many_rooms" });
    expect(client.connected).toBe(true);
  });

  it.each([
    ["a huge declared attachment count", '4599999999-["publish",{"_placeholder":true,"num":0}]'],
    ["more declared attachments than allowed", '4511-["publish",{}]'],
    ["a truncated packet", '42["publish"'],
    ["invalid JSON", "42{not json"],
    ["an unknown Socket.IO packet type", '49["x"]'],
    ["an unknown Engine.IO packet type", "9"],
    ["binary garbage", Buffer.from([0xff, 0x00, 0x13, 0x37, 0xde, 0xad])],
    ["an event packet that is not an array", '42"publish"'],
  ])("a raw WebSocket sending %s is closed, alone", async (_name, frame) => {
    const ws = await rawWebSocket(gateway.url);
    ws.send("40");
    await waitFor(() => ws.received.some((f) => f.startsWith("40{")), { message: "connected" });
    ws.send(frame);
    expect(
      await Promise.race([ws.closed, new Promise((r) => setTimeout(() => r("open"), 10_000))]),
    ).not.toBe("open");
  });

  it("unknown event names never become metric labels", async () => {
    const before = await scrape(gateway);
    const names: string[] = [];
    for (let c = 0; c < 5; c++) {
      const client = await connectClient(gateway.url);
      for (let i = 0; i < 15; i++) {
        const name = `evil-${suffix}-${c}-${i}-${"x".repeat(200)}`;
        names.push(name);
        expect(await request(client, name, {})).toEqual({ error: "unknown_event" });
      }
    }
    const after = await scrape(gateway);
    for (const name of names) expect(after).not.toContain(name);
    const unknown = { event: "(unknown)", result: "unknown_event" };
    expect(
      metric(after, "switchboard_gateway_client_events_total", unknown) -
        metric(before, "switchboard_gateway_client_events_total", unknown),
    ).toBe(75);
    expect(after.length - before.length).toBeLessThan(4096);
  });

  it("publish commands naming namespaces outside NAMESPACES are refused and create nothing", async () => {
    for (let i = 0; i < 20; i++) {
      const namespace = i === 0 ? "/../.." : `/evil-${suffix}-${i}`;
      expect(await publishOverHttp(gateway, { namespace, event: "message", data: i })).toEqual({
        status: 400,
        body: {
          error: "invalid_command",
          reason: `namespace ${JSON.stringify(namespace)} is not served (NAMESPACES)`,
        },
      });
    }
    await redis.xadd(
      stream,
      "*",
      "command",
      JSON.stringify({ v: 1, namespace: `/evil-${suffix}-stream`, event: "message" }),
    );
    const [entry] = await waitFor(
      async () => {
        const dead = await redis.xrange(`${stream}:dead`, "-", "+");
        return dead.length > 0 ? dead : undefined;
      },
      { message: "the stream command among the dead letters" },
    );
    const fields = Object.fromEntries(
      (entry?.[1] ?? []).flatMap((value, index, all) =>
        index % 2 === 0 ? [[value, all[index + 1]]] : [],
      ),
    );
    expect(fields.reason).toContain(`namespace "/evil-${suffix}-stream" is not served`);
    expect(fields.attempts).toBe("1");
    // No adapter was created for them: no Redis subscription names them.
    expect(await redis.pubsub("CHANNELS", `*evil-${suffix}*`)).toEqual([]);
    // Clients cannot connect there either.
    const client = io(`${gateway.url}/evil-${suffix}-1`, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
    });
    const [err] = await nextEvent<[Error]>(client, "connect_error");
    client.disconnect();
    expect(err.message).toBe("Invalid namespace");
  });
});

describe("NAMESPACES", () => {
  afterEach(() => closeAllClients());

  it("serves the listed namespaces with the client protocol and publish commands, and only those", async () => {
    const gateway = await startGateway({
      env: { NAMESPACES: "/chat,/admin", PUBLISH_API_KEYS: API_KEY },
    });
    try {
      const chat = await connectClient(`${gateway.url}/chat`);
      expect(await request(chat, "join", "room:1")).toEqual({ ok: true });
      const got: unknown[] = [];
      chat.on("message", (data: unknown) => got.push(data));
      expect(
        await publishOverHttp(gateway, {
          namespace: "/chat",
          rooms: ["room:1"],
          event: "message",
          data: "hi",
        }),
      ).toMatchObject({ status: 202 });
      await waitFor(() => got.includes("hi"), { message: "the command in /chat" });
      // "/" is not listed: refused like any other namespace.
      await expect(connectClient(gateway.url)).rejects.toThrow("unknown namespace");
      expect(chat.connected).toBe(true);
    } finally {
      await gateway.stop();
    }
  });

  it("a bad NAMESPACES value stops the gateway naming it", async () => {
    const gateway = await startGateway({ env: { NAMESPACES: "chat" }, waitFor: "nothing" });
    expect((await gateway.exited).code).toBe(78);
    expect(gateway.output()).toContain("invalid environment variable NAMESPACES:");
  });
});

describe("abuse on the RabbitMQ backplane", () => {
  it("publish commands to new namespaces add no bindings", async () => {
    const gateway = await startGateway({
      env: {
        BACKPLANE: "amqp",
        AMQP_URL: await amqpUrl(),
        AMQP_EXCHANGE: `switchboard.test.abuse.${randomBytes(4).toString("hex")}`,
        INGEST: "off",
        PUBLISH_API_KEYS: API_KEY,
      },
    });
    try {
      const bystander = await startBystander(gateway);
      const bindings = async () => metric(await scrape(gateway), "switchboard_backplane_bindings");
      const before = await bindings();
      expect(before).toBeGreaterThan(0);
      for (let i = 0; i < 20; i++) {
        const { status } = await publishOverHttp(gateway, {
          namespace: `/evil-${i}`,
          event: "message",
        });
        expect(status).toBe(400);
      }
      expect(await bindings()).toBe(before);
      await bystander.stillServed();
      bystander.close();
    } finally {
      await gateway.stop();
    }
  });
});
