import { describe, expect, onTestFinished } from "vitest";
import type { HarnessNode } from "../../support/harness/deployment.js";
import { waitFor } from "../../support/wait.js";
import { outcomeWithin, type SuiteContext, token } from "../context.js";

/** serverCount, a killed process, and requests that meet a dead one. */
export function livenessCases(ctx: SuiteContext): void {
  const ms = (name: string) => Number(ctx.env[name]);
  /** Generous bound for "a dead node is noticed": heartbeat timeout, its check period, margin. */
  const noticeBoundMs = () =>
    ms("HEARTBEAT_TIMEOUT_MS") + 2 * ms("HEARTBEAT_INTERVAL_MS") + 1000 + 3000;
  /** Generous bound for "a request settles": the longest request timeout of any adapter, margin. */
  const requestBoundMs = () => Math.max(ms("REQUESTS_TIMEOUT_MS"), 5000) + noticeBoundMs();

  const countsOf = (nodes: readonly HarnessNode[]) =>
    Promise.all(nodes.map((node) => node.control("serverCount", {})));
  /** For waitFor: true when every node counts `expected`, else throws the counts seen. */
  const allCount = async (nodes: readonly HarnessNode[], expected: number) => {
    const counts = await countsOf(nodes);
    if (counts.some((n) => n !== expected)) throw new Error(`serverCount() gave ${counts}`);
    return true;
  };

  /** A fourth process, killed at the end of the test whatever happens. */
  const extraNode = async () => {
    const extra = await ctx.addNode();
    onTestFinished(() => extra.signal("SIGKILL"));
    const all = [...ctx.nodes, extra];
    await waitFor(() => allCount(all, all.length), {
      timeoutMs: noticeBoundMs(),
      message: `every process to count ${all.length} servers`,
    });
    return extra;
  };

  describe("liveness", () => {
    ctx.case("server-count", "serverCount() equals the number of live processes", async () => {
      await waitFor(() => allCount(ctx.nodes, ctx.nodes.length), {
        timeoutMs: noticeBoundMs(),
        message: `every process to count ${ctx.nodes.length} servers`,
      });
    });

    ctx.case(
      "server-count-after-kill",
      "after a process is SIGKILLed, serverCount() drops within the heartbeat timeout",
      async () => {
        const extra = await extraNode();
        extra.signal("SIGKILL");
        await waitFor(() => allCount(ctx.nodes, ctx.nodes.length), {
          timeoutMs: noticeBoundMs(),
          message: `serverCount to drop to ${ctx.nodes.length}`,
        });
      },
      60_000,
    );

    ctx.case(
      "request-to-dead-node",
      "a request in flight to a process that dies resolves or rejects with a timeout, never hangs",
      async () => {
        const [asker, ...others] = ctx.nodes as HarnessNode[];
        const extra = await extraNode();
        // Frozen first, so that it is counted but cannot answer; then killed mid-request.
        extra.signal("SIGSTOP");
        const t = token();
        const asking = outcomeWithin(
          (asker as HarnessNode).control("serverSideEmitWithAck", { args: [t] }),
          requestBoundMs(),
        );
        // The request is in flight once the live processes have seen it.
        await waitFor(
          async () => {
            const seen = await Promise.all(
              others.map(async (n) =>
                (await n.control("serverSideReceived")).some((e) => e.args[0] === t),
              ),
            );
            return seen.every(Boolean);
          },
          { message: "the live processes to receive the request" },
        );
        extra.signal("SIGKILL");
        const outcome = await asking;
        expect(outcome.status).not.toBe("hung");
        if (outcome.status === "fulfilled") {
          // Resolved early, when the dead process was dropped: the live ones' answers.
          expect(outcome.value.map((r) => r.gateway).sort()).toEqual(
            others.map((n) => n.gatewayId).sort(),
          );
        } else if (outcome.status === "rejected") {
          expect(outcome.error.message).toMatch(/timeout/i);
        }
        // fetchSockets right after the death settles too.
        const fetching = await outcomeWithin(
          (asker as HarnessNode).control("fetchSockets", { timeoutMs: 2000 }),
          requestBoundMs(),
        );
        expect(fetching.status).not.toBe("hung");
        if (fetching.status === "rejected") expect(fetching.error.message).toMatch(/timeout/i);
      },
      60_000,
    );
  });
}
