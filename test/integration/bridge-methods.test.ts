import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients } from "../support/clients.js";
import { waitFor } from "../support/wait.js";
import {
  brokerUrl,
  metric,
  python,
  recorder,
  startBridgeGateway,
  uniqueChannel,
} from "./bridge-helpers.js";

afterEach(() => closeAllClients());

const hex = (value: string) => Buffer.from(value).toString("hex");

describe("python-socketio's room and connection methods on Switchboard clients", () => {
  it("enter_room, leave_room, close_room and disconnect act on the right socket of the right gateway", async () => {
    const channel = uniqueChannel();
    const url = await brokerUrl("redis");
    const gateways = [
      await startBridgeGateway("redis", channel),
      await startBridgeGateway("redis", channel),
    ];
    onTestFinished(() => Promise.all(gateways.map((g) => g.stop())).then(() => undefined));
    const suffix = channel.slice(-10);
    const [a, b] = await Promise.all(gateways.map((g) => recorder(g, [`shared:${suffix}`])));
    const host = `"host_id": "00112233445566778899aabbccddeeff"`;
    const emit = (event: string, room: string) =>
      hex(
        `{"method": "emit", "event": "${event}", "data": [null], "namespace": "/", "room": "${room}", "skip_sid": null, "callback": null, ${host}}`,
      );
    const done = emit("done", `shared:${suffix}`);
    const untilDone = (n: number) =>
      waitFor(() => a!.named("done").length >= n && b!.named("done").length >= n, {
        message: `done #${n}`,
      });

    // enter_room (python-socketio >= 5.10 sends it for a sid another server holds).
    await python(
      "raw",
      url,
      channel,
      hex(
        `{"method": "enter_room", "sid": "${b!.id}", "room": "vip:${suffix}", "namespace": "/", ${host}}`,
      ),
      emit("vip", `vip:${suffix}`),
      hex(
        `{"method": "leave_room", "sid": "${b!.id}", "room": "vip:${suffix}", "namespace": "/", ${host}}`,
      ),
      emit("vip_after_leave", `vip:${suffix}`),
      // An emit that asks for an acknowledgement: delivered, counted, the ack cannot go back.
      hex(
        `{"method": "emit", "event": "with_callback", "data": [1], "namespace": "/", "room": "${a!.id}", "skip_sid": null, "callback": ["${a!.id}", "/", 7], ${host}}`,
      ),
      done,
    );
    await untilDone(1);
    expect(b!.named("vip")).toEqual([[null]]);
    expect(a!.named("vip")).toEqual([]);
    expect(b!.named("vip_after_leave")).toEqual([]);
    expect(a!.named("with_callback")).toEqual([[1]]);
    expect(
      await metric(gateways[0]!, "switchboard_bridge_messages_total", {
        result: "delivered_without_callback",
      }),
    ).toBe(1);

    // close_room and disconnect as Debian's Flask-SocketIO publishes them (pickle).
    await python(
      "flask",
      url,
      channel,
      JSON.stringify([
        { op: "close_room", room: `shared:${suffix}` },
        { event: "after_close", data: 1, to: `shared:${suffix}` },
        { op: "disconnect", sid: a!.id },
        { event: "done", data: null },
      ]),
    );
    await waitFor(() => b!.named("done").length >= 2 && !a!.socket.connected, {
      message: "a disconnected, b done",
    });
    expect(a!.named("after_close")).toEqual([]);
    expect(b!.named("after_close")).toEqual([]);
    expect(b!.socket.connected).toBe(true);
    for (const g of gateways) {
      expect(
        await metric(g, "switchboard_bridge_messages_total", {
          format: "pickle",
          method: "close_room",
          result: "delivered",
        }),
      ).toBe(1);
      expect(
        await metric(g, "switchboard_bridge_messages_total", {
          format: "pickle",
          method: "disconnect",
          result: "delivered",
        }),
      ).toBe(1);
    }
  }, 90_000);
});
