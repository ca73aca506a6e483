import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { describe, expect, it, onTestFinished } from "vitest";
import type { PublishCommand } from "../../core/publish-command.js";
import { createPublishRoute } from "../../services/gateway/publish-http.js";

const KEY = "key-one";

async function serve(options: { apiKeys?: string[]; ready?: boolean } = {}) {
  const delivered: PublishCommand[] = [];
  const route = createPublishRoute({
    apiKeys: options.apiKeys ?? [KEY, "key-two"],
    maxCommandBytes: 1024,
    deliver: (command) => void delivered.push(command),
    isReady: () => options.ready ?? true,
    logger: pino({ level: "silent" }),
  });
  const server = createServer((req, res) => {
    if (!route(req, res)) res.writeHead(418).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/publish`;
  const post = async (body: string, key: string | null = KEY) => {
    const res = await fetch(url, {
      method: "POST",
      headers: key === null ? {} : { authorization: `Bearer ${key}` },
      body,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return { url, delivered, post };
}

const command = { v: 1, id: "c1", rooms: ["chat:1"], event: "message", data: { text: "hi" } };

describe("POST /v1/publish", () => {
  it("hands a valid command to the backplane and answers 202 with its id", async () => {
    const { post, delivered } = await serve();
    expect(await post(JSON.stringify(command))).toEqual({
      status: 202,
      body: { ok: true, id: "c1" },
    });
    expect(await post(JSON.stringify({ v: 1, event: "m" }), "key-two")).toEqual({
      status: 202,
      body: { ok: true, id: null },
    });
    expect(delivered).toEqual([command, { v: 1, event: "m" }]);
  });

  it("answers 400 with the validation error for a bad command", async () => {
    const { post, delivered } = await serve();
    expect(await post(JSON.stringify({ ...command, rooms: ["bad room"] }))).toEqual({
      status: 400,
      body: {
        error: "invalid_command",
        reason: "rooms[0]: must be 1-200 chars of [A-Za-z0-9:_.@/-]",
      },
    });
    expect((await post("{not json")).body.error).toBe("invalid_json");
    expect(delivered).toEqual([]);
  });

  it("answers 401 without a valid bearer key", async () => {
    const { post, delivered } = await serve();
    for (const key of [null, "wrong", "key-one2", ""]) {
      const res = await post(JSON.stringify(command), key);
      expect(res, String(key)).toEqual({ status: 401, body: { error: "unauthorized" } });
    }
    expect(delivered).toEqual([]);
  });

  it("answers 413 above the size limit, declared or streamed", async () => {
    const { url, post } = await serve();
    const big = JSON.stringify({ ...command, data: "x".repeat(2000) });
    const declared = await post(big);
    expect(declared.status).toBe(413);
    expect(declared.body).toEqual({
      error: "too_large",
      reason: `command is ${big.length} bytes, over the limit of 1024 bytes`,
    });
    // Chunked, without a content-length: cut off while reading.
    const streamed = await new Promise<{ status?: number; body: string }>((resolve, reject) => {
      const req = httpRequest(url, { method: "POST", headers: { authorization: `Bearer ${KEY}` } });
      req.on("response", (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode, body }));
      });
      req.on("error", reject);
      req.write(big.slice(0, 800));
      setImmediate(() => req.end(big.slice(800)));
    });
    expect(streamed.status).toBe(413);
    expect(JSON.parse(streamed.body)).toEqual({
      error: "too_large",
      reason: "command is over the limit of 1024 bytes",
    });
  });

  it("answers 415 to a compressed body, naming the encoding", async () => {
    const { url, delivered } = await serve();
    const res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-encoding": "gzip" },
      body: JSON.stringify(command),
    });
    expect(res.status).toBe(415);
    expect(await res.json()).toEqual({
      error: "unsupported_encoding",
      reason: "Content-Encoding gzip is not supported: send the command uncompressed",
    });
    expect(delivered).toEqual([]);
  });

  it("answers 503 while the gateway is not ready, and 405 to other methods", async () => {
    const notReady = await serve({ ready: false });
    expect(await notReady.post(JSON.stringify(command))).toEqual({
      status: 503,
      body: { error: "unavailable" },
    });
    const res = await fetch(notReady.url, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
  });

  it("is disabled, with a reason, when no PUBLISH_API_KEYS are configured", async () => {
    const { post, delivered } = await serve({ apiKeys: [] });
    expect(await post(JSON.stringify(command))).toEqual({
      status: 404,
      body: { error: "publish_disabled", reason: "no PUBLISH_API_KEYS configured" },
    });
    expect(delivered).toEqual([]);
  });

  it("leaves other paths to the other routes", async () => {
    const { url } = await serve();
    expect((await fetch(url.replace("/v1/publish", "/v1/other"), { method: "POST" })).status).toBe(
      418,
    );
  });
});

describe("the HTTP publisher against POST /v1/publish", () => {
  it("rejects with SWB_ERR_UNAUTHORIZED when the key is refused, and delivers nothing", async () => {
    const { createPublisher } = await import("../../services/publisher/index.js");
    const { url, delivered } = await serve();
    const publisher = createPublisher({ via: "http", url, apiKey: "not-a-key" });
    onTestFinished(() => publisher.close());
    await expect(publisher.publish({ rooms: ["chat:1"], event: "message" })).rejects.toMatchObject({
      code: "SWB_ERR_UNAUTHORIZED",
      details: { status: 401 },
    });
    expect(delivered).toEqual([]);
  });
});
