import type { ChannelModel } from "amqplib";
import { describe, expect, it } from "vitest";
import { AmqpEmitter, createAmqpAdapter } from "../../adapters/amqp/index.js";
import { resolveAdapterOptions } from "../../adapters/amqp/options.js";

// Validation happens before any channel is opened, so a stub connection suffices.
const stub = {
  createChannel: () => new Promise(() => undefined),
  on() {},
  off() {},
} as unknown as ChannelModel;

function codeOf(fn: () => unknown): { code?: string; message?: string } {
  try {
    fn();
  } catch (err) {
    return err as { code?: string; message?: string };
  }
  return {};
}

describe("amqp adapter options", () => {
  it("default every option", () => {
    expect(resolveAdapterOptions({})).toMatchObject({
      exchange: "socket.io",
      roomRouting: false,
      partialResults: false,
      heartbeatIntervalMs: 5_000,
      heartbeatTimeoutMs: 10_000,
      requestsTimeoutMs: 5_000,
      publishTimeoutMs: 5_000,
      maxPendingPublishes: 1_000,
    });
  });

  it.each([
    ["heartbeatIntervalMs", { heartbeatIntervalMs: 0 }],
    ["heartbeatTimeoutMs", { heartbeatTimeoutMs: -1 }],
    ["heartbeatTimeoutMs", { heartbeatIntervalMs: 5_000, heartbeatTimeoutMs: 5_000 }],
    ["requestsTimeoutMs", { requestsTimeoutMs: 1.5 }],
    ["requestsTimeoutMs", { requestsTimeoutMs: "100" }],
    ["exchange", { exchange: "" }],
    ["roomRouting", { roomRouting: "yes" }],
    ["partialResults", { partialResults: 1 }],
    ["reconnectMaxDelayMs", { reconnectMinDelayMs: 500, reconnectMaxDelayMs: 100 }],
    ["maxPendingPublishes", { maxPendingPublishes: Number.NaN }],
    ["connectionFactory", { connectionFactory: "amqp://x" }],
    ["logger", { logger: { warn() {} } }],
    ["onError", { onError: true }],
  ])("reject a bad %s with SWB_ERR_INVALID_ARGUMENT naming it", (name, options) => {
    const err = codeOf(() => createAmqpAdapter(stub, options as never));
    expect(err.code).toBe("SWB_ERR_INVALID_ARGUMENT");
    expect(err.message).toContain(`"${name}"`);
  });

  it("reject something that is not an amqplib connection", () => {
    expect(codeOf(() => createAmqpAdapter({} as ChannelModel)).code).toBe(
      "SWB_ERR_INVALID_ARGUMENT",
    );
    expect(codeOf(() => new AmqpEmitter(null as unknown as ChannelModel)).code).toBe(
      "SWB_ERR_INVALID_ARGUMENT",
    );
  });

  it("return a constructible (nsp) => adapter factory, as Socket.IO calls it with new", () => {
    const factory = createAmqpAdapter(stub);
    expect(typeof factory).toBe("function");
    expect(factory.prototype).toBeDefined();
  });
});
