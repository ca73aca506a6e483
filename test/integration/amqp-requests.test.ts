import { describe, expect, it } from "vitest";
import { SwitchboardMessageType } from "../../adapters/amqp/codec.js";
import { SwitchboardError } from "../../core/errors.js";
import { recordingLogger, startAmqpCluster } from "../support/amqp-helpers.js";
import { waitFor } from "../support/wait.js";

/** Node 1 answers "ping"; node 2 receives it but never answers. */
async function clusterWithSilentNode(options: Parameters<typeof startAmqpCluster>[0]) {
  const cluster = await startAmqpCluster(options);
  let silentGotIt = false;
  cluster.servers[1]?.on("ping", (cb: (v: string) => void) => cb("pong-1"));
  cluster.servers[2]?.on("ping", () => {
    silentGotIt = true;
  });
  return { cluster, silentGotIt: () => silentGotIt };
}

describe("amqp adapter: cluster requests when a node does not answer", () => {
  it("a node that closes mid-request is dropped from it, and the request completes with the others", async () => {
    const { cluster, silentGotIt } = await clusterWithSilentNode({
      adapter: { requestsTimeoutMs: 20_000 },
    });
    const started = Date.now();
    const pending = cluster.servers[0]?.serverSideEmitWithAck("ping");
    await waitFor(silentGotIt, { timeoutMs: 5_000, message: "silent node received the request" });
    await cluster.servers[2]?.close();
    expect(await pending).toEqual(["pong-1"]);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("without partialResults a timeout rejects with SWB_ERR_REQUEST_TIMEOUT naming the missing node", async () => {
    const { cluster } = await clusterWithSilentNode({ adapter: { requestsTimeoutMs: 800 } });
    const error = await cluster.servers[0]?.serverSideEmitWithAck("ping").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SwitchboardError);
    expect((error as SwitchboardError).code).toBe("SWB_ERR_REQUEST_TIMEOUT");
    expect((error as SwitchboardError).details?.missingNodes).toEqual([cluster.adapter(2).nodeId]);
  });

  it("with partialResults a timeout resolves with what arrived and logs and counts the missing node", async () => {
    const logger = recordingLogger();
    const { cluster } = await clusterWithSilentNode({
      adapter: { requestsTimeoutMs: 800, partialResults: true, logger },
    });
    expect(await cluster.servers[0]?.serverSideEmitWithAck("ping")).toEqual(["pong-1"]);
    const stats = cluster.adapter(0).stats();
    expect(stats.partialResults).toBe(1);
    expect(stats.missingResponses).toBe(1);
    const line = logger.lines.find((l) => l.message.includes("partial results"));
    expect(line?.fields).toMatchObject({
      kind: "serverSideEmit",
      missingNodes: [cluster.adapter(2).nodeId],
    });
  });

  it("fetchSockets with a timeout flag and partialResults resolves with the sockets that arrived", async () => {
    const cluster = await startAmqpCluster({ adapter: { partialResults: true } });
    const c0 = await cluster.client(0);
    const c1 = await cluster.client(1);
    // Freeze node 2's answers by swallowing its FETCH_SOCKETS requests.
    const frozen = cluster.adapter(2) as unknown as { onMessage: (m: { type: number }) => void };
    const original = frozen.onMessage.bind(frozen);
    frozen.onMessage = (m) => (m.type === 7 ? undefined : original(m));
    const sockets = await cluster.servers[0]?.timeout(700).fetchSockets();
    expect(sockets?.map((s) => s.id).sort()).toEqual([c0.id, c1.id].sort());
    expect(cluster.adapter(0).stats().missingResponses).toBe(1);
  });

  it("allRooms with partialResults resolves at the timeout with the rooms that arrived", async () => {
    const cluster = await startAmqpCluster({
      adapter: { partialResults: true, requestsTimeoutMs: 700 },
    });
    const [c0, c1] = [await cluster.client(0), await cluster.client(1)];
    await cluster.servers[0]
      ?.of("/")
      .sockets.get(c0.id ?? "")
      ?.join("zero");
    await cluster.servers[1]
      ?.of("/")
      .sockets.get(c1.id ?? "")
      ?.join("one");
    // Node 2 never answers: its allRooms requests are swallowed.
    const frozen = cluster.adapter(2) as unknown as { onMessage: (m: { type: number }) => void };
    const original = frozen.onMessage.bind(frozen);
    frozen.onMessage = (m) =>
      m.type === SwitchboardMessageType.ALL_ROOMS ? undefined : original(m);
    const rooms = await cluster.adapter(0).allRooms();
    expect([...rooms].filter((r) => r === "zero" || r === "one").sort()).toEqual(["one", "zero"]);
    expect(cluster.adapter(0).stats()).toMatchObject({ partialResults: 1, missingResponses: 1 });
    expect(
      (cluster.adapter(0) as unknown as { requests: Map<string, unknown> }).requests.size,
    ).toBe(0);
  });
});
