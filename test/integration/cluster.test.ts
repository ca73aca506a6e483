import { execFileSync } from "node:child_process";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  clientsOnEveryWorker,
  closeAllClients,
  collect,
  connectClient,
  request,
  whoami,
} from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";

/** `switchboard cluster` as a user runs it: one port, two workers, no broker. */
describe("switchboard cluster (embedded, 2 workers)", () => {
  let cluster: GatewayProcess;

  beforeAll(async () => {
    cluster = await startGateway({ mode: "cluster", env: { WORKERS: "2", LOG_LEVEL: "info" } });
  });
  afterAll(() => cluster?.stop());
  afterEach(() => closeAllClients());

  it("a room publish from a client on worker 1 reaches members on worker 2, not the sender or non-members", async () => {
    const byWorker = await clientsOnEveryWorker(cluster.url, 2);
    const [first, second] = [...byWorker.values()].map((sockets) => sockets[0]!);
    const sender = first!;
    const remoteMember = second!;
    const outsider = await connectClient(cluster.url);
    expect((await whoami(sender)).gateway).not.toBe((await whoami(remoteMember)).gateway);

    expect(await request(sender, "join", "chat:cluster")).toEqual({ ok: true });
    expect(await request(remoteMember, "join", "chat:cluster")).toEqual({ ok: true });
    const got = {
      sender: collect(sender, "message"),
      member: collect(remoteMember, "message"),
      outsider: collect(outsider, "message"),
    };
    expect(
      await request(sender, "publish", { room: "chat:cluster", event: "message", data: { n: 1 } }),
    ).toEqual({
      ok: true,
    });
    await waitFor(() => got.member.length === 1, { message: "delivery to the other worker" });

    // leave stops delivery: publish again, then a marker to everyone still in the room.
    expect(await request(remoteMember, "leave", "chat:cluster")).toEqual({ ok: true });
    expect(await request(outsider, "join", "chat:cluster")).toEqual({ ok: true });
    await request(sender, "publish", { room: "chat:cluster", event: "message", data: { n: 2 } });
    await waitFor(() => got.outsider.length === 1, {
      message: "the outsider, now a member, gets n=2",
    });
    expect(got).toEqual({ sender: [], member: [{ n: 1 }], outsider: [{ n: 2 }] });
  });

  it("answers /healthz and /readyz on the shared port", async () => {
    expect((await fetch(`${cluster.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${cluster.url}/readyz`)).json()).toEqual({ status: "ready" });
  });

  it("replaces a worker that dies", async () => {
    const workersBefore = childPids(cluster.pid);
    expect(workersBefore).toHaveLength(2);
    process.kill(workersBefore[0]!, "SIGKILL");
    const workersAfter = await waitFor(
      () => {
        const now = childPids(cluster.pid);
        return now.length === 2 && !now.includes(workersBefore[0]!) ? now : undefined;
      },
      { timeoutMs: 20_000, message: "a replacement worker" },
    );
    expect(workersAfter).toContain(workersBefore[1]);
    const replacement = workersAfter.find((pid) => pid !== workersBefore[1])!;
    // While the replacement loads, the primary's /metrics still answers at once, with the other
    // worker's metrics (a loading worker answers with none).
    const scrape = await fetch(`${cluster.url}/metrics`, { signal: AbortSignal.timeout(4000) });
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain("switchboard_gateway_connections{");
    await waitFor(
      () =>
        cluster
          .output()
          .split("\n")
          .some(
            (line) =>
              line.includes(`"worker":${replacement},`) && line.includes('"msg":"worker ready"'),
          ),
      { timeoutMs: 30_000, message: "the replacement's 'worker ready' log line" },
    );
    // The replacement serves clients: both workers take connections again.
    const byWorker = await clientsOnEveryWorker(cluster.url, 2);
    expect(byWorker.size).toBe(2);
  });
});

function childPids(parent: number): number[] {
  try {
    // Workers only (they re-run the entry file): tsx also runs an esbuild child.
    return execFileSync("ps", ["-o", "pid=,args=", "--ppid", String(parent)], { encoding: "utf8" })
      .split("\n")
      .filter((line) => line.includes("entry.ts"))
      .map((line) => Number.parseInt(line.trim(), 10))
      .filter((pid) => pid > 0);
  } catch {
    return []; // ps exits 1 when there are none
  }
}
