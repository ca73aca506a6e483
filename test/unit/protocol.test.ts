import type { Socket } from "socket.io-client";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { valueExceedsDepth } from "../../core/json-depth.js";
import { jsonSizeBound } from "../../services/gateway/protocol.js";
import { closeAllClients, collect, connectClient, request, whoami } from "../support/clients.js";
import { startInProcessGateway } from "../support/in-process-gateway.js";
import { nextEvent, waitFor } from "../support/wait.js";

afterEach(() => closeAllClients());

async function gatewayWith(env: Record<string, string> = {}) {
  const gw = await startInProcessGateway(env);
  onTestFinished(() => gw.close());
  return gw;
}

describe("client protocol acks", () => {
  it("join, whoami and leave answer with their documented shapes", async () => {
    const { url } = await gatewayWith();
    const client = await connectClient(url);
    expect(await request(client, "join", "chat:1")).toEqual({ ok: true });
    expect(await whoami(client)).toEqual({ id: client.id, gateway: "test-gw", rooms: ["chat:1"] });
    expect(await request(client, "leave", "chat:1")).toEqual({ ok: true });
    expect((await whoami(client)).rooms).toEqual([]);
  });

  it.each([
    ["join", ["bad room"], "invalid_room"],
    ["join", [42], "invalid_room"],
    ["join", [], "invalid_room"],
    ["join", ["user:7"], "forbidden"],
    ["leave", [{}], "invalid_room"],
    ["publish", ["chat:1"], "invalid_payload"],
    ["publish", [null], "invalid_payload"],
    ["publish", [{ room: "chat:1", event: "m", data: 1, extra: true }], "invalid_payload"],
    ["publish", [{ room: "no spaces", event: "m" }], "invalid_room"],
    ["publish", [{ room: "chat:1", event: "disconnect" }], "invalid_event"],
    ["publish", [{ room: "chat:1", event: 5 }], "invalid_event"],
    ["publish", [{ room: "chat:1", event: "m", data: "x".repeat(20_000) }], "payload_too_large"],
    ["publish", [{ room: "chat:1", event: "m", data: nested(32) }], "payload_too_deep"],
    [
      "publish",
      [{ room: "chat:1", event: "m", data: { a: ["é".repeat(9_000)] } }],
      "payload_too_large",
    ],
    // Past the size estimate's budget, the rest of the value is still checked for depth.
    [
      "publish",
      [{ room: "chat:1", event: "m", data: { a: "x".repeat(4_000), b: nested(31) } }],
      "payload_too_deep",
    ],
    ["shout", ["hi"], "unknown_event"],
  ])("%s %o -> {error: %s}", async (event, args, error) => {
    const { url } = await gatewayWith();
    const client = await connectClient(url);
    expect(await request(client, event, ...args)).toEqual({ error });
    // The connection survives a single bad request.
    expect(client.connected).toBe(true);
    expect(await request(client, "join", "chat:ok")).toEqual({ ok: true });
  });

  it("a payload near MAX_PUBLISH_BYTES is accepted when its JSON fits (16 KiB by default)", async () => {
    const { url } = await gatewayWith();
    const client = await connectClient(url);
    // JSON of 16,000 bytes: well past the quick upper bound (6 bytes per character), within the limit.
    const data = { text: "x".repeat(15_980), n: [1, 2.5, true, null] };
    expect(Buffer.byteLength(JSON.stringify(data))).toBeLessThanOrEqual(16 * 1024);
    expect(await request(client, "publish", { room: "chat:1", event: "m", data })).toEqual({
      ok: true,
    });
    const over = { text: "x".repeat(16_400) };
    expect(await request(client, "publish", { room: "chat:1", event: "m", data: over })).toEqual({
      error: "payload_too_large",
    });
  });

  it("binary data counts its bytes against MAX_PUBLISH_BYTES and arrives as binary", async () => {
    const { url } = await gatewayWith();
    const [sender, member] = await Promise.all([connectClient(url), connectClient(url)]);
    for (const socket of [sender, member])
      expect(await request(socket, "join", "chat:b")).toEqual({ ok: true });
    const got = collect<{ name: string; file: Buffer }>(member, "file");
    // 16,300 bytes of binary and a name: under 16 KiB as bytes, ≈ 57 KB as a Buffer's JSON.
    const file = Buffer.alloc(16_300, 0xab);
    expect(
      await request(sender, "publish", {
        room: "chat:b",
        event: "file",
        data: { name: "f", file },
      }),
    ).toEqual({ ok: true });
    await waitFor(() => got.length === 1, { message: "binary delivery" });
    expect(got[0]?.name).toBe("f");
    expect(Buffer.from(got[0]?.file ?? []).equals(file)).toBe(true);
    // Exactly the limit, then one byte over: {"name":"f","file":} is 20 bytes.
    const exact = { name: "f", file: Buffer.alloc(16 * 1024 - 20, 1) };
    expect(
      await request(sender, "publish", { room: "chat:b", event: "file", data: exact }),
    ).toEqual({ ok: true });
    const over = { name: "f", file: Buffer.alloc(16 * 1024 - 19, 1) };
    expect(await request(sender, "publish", { room: "chat:b", event: "file", data: over })).toEqual(
      { error: "payload_too_large" },
    );
  });

  it("a payload over MAX_PUBLISH_BYTES is refused, whatever its numbers are", async () => {
    const { url } = await gatewayWith();
    const client = await connectClient(url);
    // 650 numbers JSON writes in 25 characters each ("-0.0000012345678901234567"): 16,901 bytes.
    const data = Array.from({ length: 650 }, () => -1.2345678901234567e-6);
    expect(Buffer.byteLength(JSON.stringify(data))).toBeGreaterThan(16 * 1024);
    expect(await request(client, "publish", { room: "chat:1", event: "m", data })).toEqual({
      error: "payload_too_large",
    });
  });

  it("a publish reaches the room's other members, not the sender or non-members", async () => {
    const { url } = await gatewayWith();
    const [sender, member, outsider] = await Promise.all([
      connectClient(url),
      connectClient(url),
      connectClient(url),
    ]);
    for (const socket of [sender, member])
      expect(await request(socket, "join", "chat:p")).toEqual({ ok: true });
    const got = {
      sender: collect(sender, "message"),
      member: collect(member, "message"),
      outsider: collect(outsider, "message"),
    };
    expect(
      await request(sender, "publish", { room: "chat:p", event: "message", data: { text: "hi" } }),
    ).toEqual({ ok: true });
    await waitFor(() => got.member.length === 1, { message: "member delivery" });
    // A later publish the outsider does see proves it had its chance at the first one.
    await request(outsider, "join", "chat:q");
    await request(member, "publish", { room: "chat:q", event: "message", data: "marker" });
    await waitFor(() => got.outsider.length === 1, { message: "marker" });
    expect(got).toEqual({ sender: [], member: [{ text: "hi" }], outsider: ["marker"] });
  });

  it("caps the rooms one socket may join", async () => {
    const { url } = await gatewayWith({ MAX_ROOMS_PER_SOCKET: "2" });
    const client = await connectClient(url);
    expect(await request(client, "join", "r:1")).toEqual({ ok: true });
    expect(await request(client, "join", "r:2")).toEqual({ ok: true });
    expect(await request(client, "join", "r:3")).toEqual({ error: "too_many_rooms" });
    expect(await request(client, "join", "r:2")).toEqual({ ok: true });
  });
});

describe("misbehaving clients", () => {
  it("are rate limited with an ack error", async () => {
    const { url } = await gatewayWith({ RATE_LIMIT_PER_SEC: "1", RATE_LIMIT_BURST: "3" });
    const client = await connectClient(url);
    const replies = await Promise.all([1, 2, 3, 4, 5].map(() => request(client, "join", "chat:1")));
    expect(replies.filter((r) => JSON.stringify(r) === '{"ok":true}')).toHaveLength(3);
    expect(replies.filter((r) => JSON.stringify(r) === '{"error":"rate_limited"}')).toHaveLength(2);
  });

  it("are disconnected after too many violations, alone", async () => {
    const { url } = await gatewayWith({ MAX_STRIKES: "3" });
    const [bad, good] = await Promise.all([connectClient(url), connectClient(url)]);
    const disconnected = nextEvent<[string]>(bad as unknown as Socket, "disconnect");
    await request(bad, "shout");
    await request(bad, "join", "user:1");
    bad.emit("join", "no-ack-given");
    const [reason] = await disconnected;
    expect(reason).toBe("io server disconnect");
    expect(good.connected).toBe(true);
    expect(await request(good, "join", "chat:1")).toEqual({ ok: true });
  });

  it("get the error of the request that is their last strike before they are disconnected", async () => {
    const { url } = await gatewayWith({ MAX_STRIKES: "2" });
    for (const last of [
      ["join", "bad room"],
      ["leave", "bad room"],
      ["publish", { room: "chat:1" }],
      ["shout"],
    ] as const) {
      const client = await connectClient(url);
      const disconnected = nextEvent<[string]>(client as unknown as Socket, "disconnect");
      expect(await request(client, "join", "user:1")).toHaveProperty("error");
      const [event, ...args] = last;
      expect(await request(client, event, ...args), event).toHaveProperty("error");
      expect((await disconnected)[0]).toBe("io server disconnect");
    }
  });

  it("lose only their own connection when a packet exceeds MAX_PAYLOAD_BYTES", async () => {
    const { url } = await gatewayWith({ MAX_PAYLOAD_BYTES: "2048" });
    const [big, other] = await Promise.all([connectClient(url), connectClient(url)]);
    const disconnected = nextEvent<[string]>(big as unknown as Socket, "disconnect");
    big.emit("publish", { room: "chat:1", event: "m", data: "x".repeat(4096) }, () => {});
    const [reason] = await disconnected;
    expect(reason).toBe("transport close");
    expect(await request(other, "join", "chat:1")).toEqual({ ok: true });
  });
});

/** `levels` arrays inside each other. */
function nested(levels: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < levels; i++) value = [value];
  return value;
}

describe("the size and depth check of a publish's data", () => {
  const samples: unknown[] = [
    null,
    0,
    -1.2345678901234567e-308,
    // The longest number JSON writes: fixed notation down to 1e-6, 25 characters.
    -0.0000012345678901234567,
    true,
    "",
    "plain",
    'quotes " and \\ and \n and \u0001 and é and 😀',
    [],
    {},
    [1, "two", [3, [4, { five: 5 }]], null, false],
    { a: { b: { c: "d" } }, "k\u0000ey": ["é", 1e21] },
    { nested: nested(10) },
  ];

  it.each(samples.map((value) => [JSON.stringify(value), value]))(
    "the bound for %s is at least its UTF-8 JSON size",
    (_, value) => {
      const bound = jsonSizeBound(value, 31, Number.POSITIVE_INFINITY);
      expect(bound).toBeGreaterThanOrEqual(Buffer.byteLength(JSON.stringify(value)));
    },
  );

  it("sizes binary leaves by their bytes, exactly", () => {
    expect(jsonSizeBound(Buffer.alloc(100), 31, Number.POSITIVE_INFINITY)).toBe(100);
    expect(jsonSizeBound(new Uint8Array(7).buffer, 31, Number.POSITIVE_INFINITY)).toBe(7);
    // An upper bound around it (the key's 6 bytes per character), the binary part exact.
    const inObject = jsonSizeBound({ b: Buffer.alloc(10) }, 31, Number.POSITIVE_INFINITY);
    expect(inObject).toBeGreaterThanOrEqual('{"b":}'.length + 10);
    expect(inObject).toBeLessThan(100);
    expect(jsonSizeBound(Buffer.alloc(101), 31, 100)).toBeLessThan(0);
  });

  it("data whose JSON is one byte over the budget is never under it, numbers of every length included", () => {
    const values: unknown[] = [
      Array.from({ length: 600 }, () => -0.0000012345678901234567),
      { list: Array.from({ length: 300 }, (_, i) => -(i + 1) * 1.2345678901234567e-6) },
    ];
    for (const value of values) {
      const size = Buffer.byteLength(JSON.stringify(value));
      expect(jsonSizeBound(value, 31, size - 1)).toBeLessThan(0);
    }
  });

  it("refuses as too deep exactly what the depth check refuses, a cycle included", () => {
    for (const depth of [30, 31, 32, 40]) {
      expect(jsonSizeBound(nested(depth), 31, Number.POSITIVE_INFINITY) === -1).toBe(
        valueExceedsDepth(nested(depth), 31),
      );
    }
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(jsonSizeBound(cyclic, 31, Number.POSITIVE_INFINITY)).toBe(-1);
  });
});
