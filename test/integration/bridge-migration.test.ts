import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients, request } from "../support/clients.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";
import {
  type Broker,
  brokerUrl,
  metric,
  python,
  recorder,
  startBridgeGateway,
  startPython,
  uniqueChannel,
} from "./bridge-helpers.js";

afterEach(() => closeAllClients());

const hex = (value: string) => Buffer.from(value).toString("hex");

describe.each(["redis", "amqp"] as Broker[])(
  "PYTHON_BRIDGE_MODE=both over %s: a python-socketio server and Switchboard share the channel",
  (broker) => {
    it("each side's clients get the other side's emits once, and nothing is echoed", async () => {
      const channel = uniqueChannel();
      const url = await brokerUrl(broker);
      // Debian's python-socketio 5.7.2 reads JSON `data` as one argument: `single`.
      const gateway = await startBridgeGateway(broker, channel, {
        PYTHON_BRIDGE_MODE: "both",
        PYTHON_BRIDGE_JSON_DATA: "single",
      });
      onTestFinished(() => gateway.stop());

      const port = await freePort();
      const server = startPython("server", url, channel, String(port));
      onTestFinished(() => server.stop());
      await server.waitForLine((l) => l.listening === port, "the python-socketio server listening");
      const room = `room:${channel.slice(-10)}`;
      const pyClient = startPython("polling-client", `http://127.0.0.1:${port}`, room);
      onTestFinished(() => pyClient.stop());
      await pyClient.waitForLine((l) => l.ready === true, "the Python client joined");

      const publisher = await recorder(gateway, []);
      const member = await recorder(gateway, [room]);
      const pyEvents = (event: string) =>
        pyClient.lines.filter((l) => l.event === event).map((l) => l.args);

      // A Switchboard client publishes: its room-mate here gets it through the backplane, the
      // Python server's client through the channel.
      const reply = await request(publisher.socket, "publish", {
        room,
        event: "from_switchboard",
        data: { hello: "python" },
      });
      expect(reply).toEqual({ ok: true });
      await waitFor(() => pyEvents("from_switchboard").length > 0, {
        message: "the publish at the Python server's client",
      });

      // The Python server's own emit (its host id, pickled) reaches the Switchboard client.
      pyClient.send({ shout: { event: "from_python_server", data: [1, 2], room } });
      await waitFor(() => member.named("from_python_server").length > 0, {
        message: "the Python server's emit at the Switchboard client",
      });

      // A write-only Flask-SocketIO emit reaches both sides once; Switchboard does not publish it
      // again (that would reach the Python client twice).
      await python(
        "flask",
        url,
        channel,
        JSON.stringify([{ event: "from_flask", data: "hi", to: room }]),
      );
      // JSON as python-socketio 5.14.0-5.15.0 writes it: `data` is the single argument.
      const common = `"namespace": "/", "room": "${room}", "skip_sid": null, "callback": null, "host_id": "fedcba9876543210fedcba9876543210"`;
      await python(
        "raw",
        url,
        channel,
        hex(`{"method": "emit", "event": "json_single", "data": {"x": 1}, ${common}}`),
        hex(`{"method": "emit", "event": "json_list", "data": ["a", "b"], ${common}}`),
      );
      await python(
        "flask",
        url,
        channel,
        JSON.stringify([{ event: "done", data: null, to: room }]),
      );
      await waitFor(() => member.named("done").length > 0 && pyEvents("done").length > 0, {
        message: "done on both sides",
      });

      expect(member.named("from_switchboard")).toEqual([[{ hello: "python" }]]);
      expect(member.events.map((e) => e.event)).toEqual([
        "from_switchboard",
        "from_python_server",
        "from_flask",
        "json_single",
        "json_list",
        "done",
      ]);
      expect(member.named("from_python_server")).toEqual([[[1, 2]]]);
      expect(member.named("json_single")).toEqual([[{ x: 1 }]]);
      expect(member.named("json_list")).toEqual([[["a", "b"]]]);
      expect(publisher.events).toEqual([]);
      expect(pyEvents("from_switchboard")).toEqual([[{ hello: "python" }]]);
      expect(pyEvents("from_flask")).toEqual([["hi"]]);
      expect(pyEvents("from_python_server")).toEqual([[[1, 2]]]);
      expect(pyEvents("json_single")).toEqual([[{ x: 1 }]]);
      // Switchboard published exactly one message (the client's publish) and saw it come back.
      expect(
        await metric(gateway, "switchboard_bridge_messages_total", { result: "published" }),
      ).toBe(1);
      expect(await metric(gateway, "switchboard_bridge_messages_total", { result: "own" })).toBe(1);
    }, 120_000);
  },
);
