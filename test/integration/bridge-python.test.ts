import { execFileSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { closeAllClients } from "../support/clients.js";
import type { GatewayProcess } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";
import {
  type Broker,
  brokerUrl,
  metric,
  PYTHON,
  python,
  type Recorder,
  recorder,
  startBridgeGateway,
  startPython,
  uniqueChannel,
} from "./bridge-helpers.js";

afterEach(() => closeAllClients());

const json = (value: string) => Buffer.from(value).toString("hex");

/** Pickles made by Python's own pickler that would run a command if anything unpickled them. */
function hostilePickles(marker: string): string[] {
  const code = `import pickle, os, builtins, subprocess
class System:
  def __reduce__(self): return (os.system, ("touch ${marker}",))
class Eval:
  def __reduce__(self): return (builtins.eval, ("open('${marker}', 'w')",))
class Popen:
  def __reduce__(self): return (subprocess.Popen, (["touch", "${marker}"],))
for cls in (System, Eval, Popen):
  for p in (0, 2, 4, 5): print(pickle.dumps({"method": "emit", "event": "x", "data": cls()}, protocol=p).hex())
  print(pickle.dumps(cls(), protocol=4).hex())
`;
  return execFileSync(PYTHON, ["-c", code], { encoding: "utf8" }).trim().split("\n");
}

/** Waits until every recorder got `done`, the last emit of a batch. */
async function allDone(recorders: Recorder[], count = 1) {
  await waitFor(() => recorders.every((r) => r.named("done").length >= count), {
    timeoutMs: 20_000,
    message: "every client to receive done",
  });
}

describe.each(["amqp", "redis"] as Broker[])(
  "Flask-SocketIO and python-socketio emit over %s to clients of 3 gateways",
  (broker) => {
    it("pickles from Debian's Flask-SocketIO, JSON as python-socketio >= 5.15.1 writes it, and hostile input", async () => {
      const channel = uniqueChannel();
      const url = await brokerUrl(broker);
      const gateways: GatewayProcess[] = [];
      onTestFinished(() => Promise.all(gateways.map((g) => g.stop())).then(() => undefined));
      for (let i = 0; i < 3; i++) {
        gateways.push(await startBridgeGateway(broker, channel, { NAMESPACES: "/,/chat" }));
      }

      const room = `room:${channel.slice(-10)}`;
      const members = await Promise.all(gateways.map((g) => recorder(g, [room])));
      const others = await Promise.all(gateways.map((g) => recorder(g, [])));
      expect(new Set(members.map((m) => m.gateway)).size).toBe(3);
      const everyone = [...members, ...others];
      // The same room name in a second namespace, on every gateway.
      const chatters = await Promise.all(gateways.map((g) => recorder(g, [room], "/chat")));

      // A python-socketio client on gateway 1, in the room too: plain protocol interop.
      const pyClient = startPython("client", gateways[1]!.url, room);
      onTestFinished(() => pyClient.stop());
      await pyClient.waitForLine((l) => l.ready === true, "the Python client joined");

      const [emitted] = await python(
        "flask",
        url,
        channel,
        JSON.stringify([
          { event: "to_room", data: { n: 1 }, to: room },
          { event: "to_all", data: "hello" },
          { event: "skip", data: 3, to: room, skip_sid: members[1]!.id },
          { event: "tuple", data: [1, "two", { three: 3 }], tuple: true, to: room },
          { event: "to_sid", data: "just you", to: others[2]!.id },
          { event: "bytes", bytes: [0, 1, 255], to: room },
          { event: "chat", data: { in: "chat" }, to: room, namespace: "/chat" },
          // A namespace the gateways do not serve: nothing to deliver, and nothing created.
          { event: "nowhere", data: 1, to: room, namespace: "/nope" },
          { event: "done", data: null },
        ]),
      );
      expect(emitted).toEqual({ emitted: 9 });
      await allDone(everyone);
      await waitFor(() => chatters.every((c) => c.named("chat").length > 0), {
        message: "every /chat client to receive chat",
      });

      for (const [i, m] of members.entries()) {
        expect(m.named("to_room")).toEqual([[{ n: 1 }]]);
        expect(m.named("to_all")).toEqual([["hello"]]);
        expect(m.named("skip")).toEqual(i === 1 ? [] : [[3]]);
        expect(m.named("tuple")).toEqual([[1, "two", { three: 3 }]]);
        const [bytes] = m.named("bytes");
        expect(bytes).toHaveLength(1);
        const file = bytes![0] as { blob: Uint8Array; name: string };
        expect([...Buffer.from(file.blob)]).toEqual([0, 1, 255]);
        expect(m.named("to_sid")).toEqual([]);
        expect(m.named("done")).toEqual([[]]);
      }
      for (const [i, o] of others.entries()) {
        expect(o.events.map((e) => e.event)).toEqual(
          i === 2 ? ["to_all", "to_sid", "done"] : ["to_all", "done"],
        );
        expect(o.named("to_all")).toEqual([["hello"]]);
      }
      for (const g of gateways) {
        expect(
          await metric(g, "switchboard_bridge_messages_total", {
            format: "pickle",
            result: "delivered",
          }),
        ).toBe(9);
      }

      // JSON exactly as python-socketio >= 5.15.1 puts it on the queue (data: list of arguments,
      // NaN as Python's json writes it, a binary argument as placeholder + base64 attachment).
      const common = `"namespace": "/", "skip_sid": null, "callback": null, "host_id": "0123456789abcdef0123456789abcdef"`;
      await python(
        "raw",
        url,
        channel,
        json(
          `{"method": "emit", "event": "json_one", "data": [{"x": 1}], "room": "${room}", ${common}}`,
        ),
        json(
          `{"method": "emit", "event": "json_two", "data": ["a", 2], "room": ["${room}", "${others[0]!.id}"], ${common}}`,
        ),
        json(
          `{"method": "emit", "event": "json_nan", "data": [NaN, {"v": Infinity}], "room": "${room}", ${common}}`,
        ),
        json(
          `{"method": "emit", "event": "json_bin", "data": [[{"_placeholder": true, "num": 0}, "caption"], "${Buffer.from([9, 8, 7]).toString("base64")}"], "binary": true, "room": "${room}", ${common}}`,
        ),
        json(`{"method": "emit", "event": "done", "data": [], "room": null, ${common}}`),
      );
      await allDone(everyone, 2);
      for (const m of members) {
        expect(m.named("json_one")).toEqual([[{ x: 1 }]]);
        expect(m.named("json_two")).toEqual([["a", 2]]);
        // Socket.IO's JSON has no NaN or Infinity: clients see null, as JSON.stringify writes them.
        expect(m.named("json_nan")).toEqual([[null, { v: null }]]);
        const [bin] = m.named("json_bin");
        expect([...Buffer.from(bin![0] as Uint8Array)]).toEqual([9, 8, 7]);
        expect(bin![1]).toBe("caption");
      }
      expect(others[0]!.named("json_two")).toEqual([["a", 2]]);
      expect(others[1]!.named("json_two")).toEqual([]);

      // The Python client saw what a member sees, once each.
      const expected = [
        "bytes",
        "done",
        "done",
        "json_bin",
        "json_nan",
        "json_one",
        "json_two",
        "skip",
        "to_all",
        "to_room",
        "tuple",
      ];
      const seen = () => pyClient.lines.filter((l) => typeof l.event === "string");
      await waitFor(() => seen().length >= expected.length, {
        message: "the Python client's events",
      });
      expect(
        seen()
          .map((l) => l.event)
          .sort(),
      ).toEqual(expected);
      const args = (event: string) => seen().find((l) => l.event === event)!.args;
      expect(args("tuple")).toEqual([1, "two", { three: 3 }]);
      expect(args("bytes")).toEqual([{ blob: "0001ff", name: "file" }]);
      expect(args("json_bin")).toEqual(["090807", "caption"]);

      // Hostile input: nothing runs, everything is counted, delivery goes on.
      const marker = join(tmpdir(), `switchboard-bridge-marker-${channel.slice(-10)}`);
      rmSync(marker, { force: true });
      const hostile = [
        ...hostilePickles(marker),
        json(`["method", "emit"]`), // non-dict JSON
        json(`"emit"`),
        json(`{"method": "exec", "code": "x"}`), // unknown method
        json(`{"event": "no method"}`),
        json(`{"method": "emit", "event": "deep", "data": ${"[".repeat(5000)}${"]".repeat(5000)}}`),
        "80048d0000000000000040", // BINUNICODE8 declaring 2^62 bytes
        "80049500", // truncated FRAME
        Buffer.from(
          "\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94(\x8c\x06method",
          "latin1",
        ).toString("hex"), // truncated
        "ff00ff00",
      ];
      await python("raw", url, channel, ...hostile);
      await python(
        "flask",
        url,
        channel,
        JSON.stringify([
          { event: "after", data: "still here", to: room },
          { event: "done", data: null },
        ]),
      );
      await allDone(everyone, 3);
      for (const m of members) expect(m.named("after")).toEqual([["still here"]]);
      for (const g of gateways) {
        expect(await metric(g, "switchboard_bridge_messages_total", { result: "rejected" })).toBe(
          hostile.length,
        );
        expect(g.isRunning()).toBe(true);
      }
      expect(existsSync(marker)).toBe(false);
      // The second namespace got its one emit, once, and nothing meant for "/".
      for (const c of chatters)
        expect(c.events).toEqual([{ event: "chat", args: [{ in: "chat" }] }]);
      expect(gateways[0]!.output()).toMatch(/forbidden opcode (REDUCE|GLOBAL|STACK_GLOBAL)/);
    }, 120_000);
  },
);
