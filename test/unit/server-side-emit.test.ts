import { Server } from "socket.io";
import { describe, expect, it, vi } from "vitest";
import { guardServerSideEmit } from "../../adapters/server-side-emit.js";

/**
 * A server-side event from another node, as every adapter hands it over
 * (`nsp._onServerSideEmit`), meets listeners one of which throws. Across real processes and
 * brokers: the conformance case "server-side-emit-listener-throws".
 */
describe("serverSideEmit listeners, guarded", () => {
  const setup = () => {
    // Not attached to an HTTP server: nothing to close.
    const io = new Server();
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() };
    guardServerSideEmit(io.sockets, logger);
    const deliver = (...args: unknown[]) =>
      (io.sockets as unknown as { _onServerSideEmit(args: unknown[]): void })._onServerSideEmit(
        args,
      );
    return { io, logger, deliver };
  };

  it("a listener that throws is logged with the event, and the listeners after it still run", () => {
    const { io, logger, deliver } = setup();
    const got: unknown[] = [];
    io.on("job", () => {
      throw new Error("boom");
    });
    io.on("job", (n: unknown) => got.push(n));
    expect(() => deliver("job", 1)).not.toThrow();
    deliver("job", 2);
    expect(got).toEqual([1, 2]);
    expect(logger.error).toHaveBeenCalledTimes(2);
    expect(logger.error.mock.calls[0]?.[0]).toMatchObject({ nsp: "/", event: "job" });
  });

  it("an async listener that rejects is logged, not an unhandled rejection", async () => {
    const { io, logger, deliver } = setup();
    io.on("job", async () => {
      throw new Error("later");
    });
    deliver("job");
    await vi.waitFor(() => expect(logger.error).toHaveBeenCalledTimes(1));
    expect(logger.error.mock.calls[0]?.[0]).toMatchObject({ event: "job" });
  });

  it("a once listener runs once, as with emit", () => {
    const { io, deliver } = setup();
    const got: unknown[] = [];
    io.once("job", (n: unknown) => got.push(n));
    deliver("job", 1);
    deliver("job", 2);
    expect(got).toEqual([1]);
  });

  it("the ack is answered by a listener after the one that threw", () => {
    const { io, deliver } = setup();
    io.on("ask", () => {
      throw new Error("boom");
    });
    io.on("ask", (ack: (answer: string) => void) => ack("yes"));
    const ack = vi.fn();
    deliver("ask", ack);
    expect(ack).toHaveBeenCalledWith("yes");
  });
});
