import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients } from "../support/clients.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait.js";
import {
  type Broker,
  brokerUrl,
  metric,
  python,
  recorder,
  startBridgeGateway,
  uniqueChannel,
} from "./bridge-helpers.js";

afterEach(() => closeAllClients());

/** The broker URL with its host and port replaced by the proxy's. */
function through(url: string, proxy: TcpProxy): string {
  const proxied = new URL(url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(proxy.port);
  return proxied.toString();
}

const emitTo = (room: string, event: string) =>
  Buffer.from(
    `{"method": "emit", "event": "${event}", "data": ["${event}"], "namespace": "/", "room": "${room}", "skip_sid": null, "callback": null, "host_id": "00112233445566778899aabbccddeeff"}`,
  ).toString("hex");

describe.each<Broker>(["amqp", "redis"])("python bridge on %s: the connection is cut", (broker) => {
  it("reports itself disconnected, reconnects when the broker is back, and delivers again", async () => {
    const channel = uniqueChannel();
    const url = await brokerUrl(broker);
    const target = new URL(url);
    const proxy = await TcpProxy.start(target.hostname, Number(target.port));
    onTestFinished(() => proxy.close());
    const gateway = await startBridgeGateway(broker, channel, {
      PYTHON_BRIDGE_URL: through(url, proxy),
    });
    onTestFinished(() => gateway.stop());
    const room = `outage:${channel.slice(-10)}`;
    const client = await recorder(gateway, [room]);

    await python("raw", url, channel, emitTo(room, "before"));
    await waitFor(() => client.named("before").length === 1, {
      message: "the emit before the cut",
    });

    proxy.cut();
    await waitFor(async () => (await metric(gateway, "switchboard_bridge_connected")) === 0, {
      timeoutMs: 10_000,
      message: "the bridge reporting the cut",
    });
    proxy.restore();
    await waitFor(async () => (await metric(gateway, "switchboard_bridge_connected")) === 1, {
      timeoutMs: 20_000,
      message: "the bridge listening again",
    });

    await python("raw", url, channel, emitTo(room, "after"));
    await waitFor(() => client.named("after").length === 1, { message: "the emit after the cut" });
    expect(client.named("before")).toEqual([["before"]]);
    expect(client.named("after")).toEqual([["after"]]);
    // The Socket.IO client itself was never touched: the same connection throughout.
    expect(client.socket.connected).toBe(true);
  });
});
