import { EventEmitter } from "node:events";
import type { IncomingMessage } from "node:http";
import { describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../../core/errors.js";
import { type PrimaryChannel, primarySlots } from "../../services/cluster/connection-slots.js";
import {
  type ConnectionSlots,
  createAdmission,
  SlotTable,
} from "../../services/gateway/admission.js";
import { trustedProxies } from "../../services/gateway/client-address.js";
import type { Logger } from "../../services/gateway/logger.js";

/**
 * MAX_CONNECTIONS_PER_IP slots: the primary's table, a worker's requests to it, and what
 * admission does when they cannot be had. The cluster as a whole is tested with real processes
 * in test/integration/cluster-admission.test.ts.
 */
describe("the primary's slot table", () => {
  it("grants at most max slots per address, whoever asks, and takes them back", () => {
    const table = new SlotTable<string>(2);
    expect([table.reserve("w1", "a"), table.reserve("w2", "a"), table.reserve("w1", "a")]).toEqual([
      true,
      true,
      false,
    ]);
    expect(table.reserve("w1", "b")).toBe(true);
    table.release("w2", "a");
    expect(table.reserve("w1", "a")).toBe(true);
    expect(table.taken("a")).toBe(2);
  });

  it("ignores a release of a slot the worker does not hold", () => {
    const table = new SlotTable<string>(1);
    expect(table.reserve("w1", "a")).toBe(true);
    table.release("w2", "a");
    expect(table.taken("a")).toBe(1);
    expect(table.reserve("w2", "a")).toBe(false);
  });

  it("frees every slot of a worker that is gone", () => {
    const table = new SlotTable<string>(2);
    table.reserve("w1", "a");
    table.reserve("w1", "a");
    table.reserve("w2", "b");
    table.releaseAll("w1");
    expect([table.taken("a"), table.taken("b")]).toEqual([0, 1]);
  });
});

/** A worker's IPC channel whose primary answers only when the test says so. */
function fakePrimary() {
  const events = new EventEmitter();
  const sent: Array<{ type: string; address: string; id?: number }> = [];
  const channel: PrimaryChannel = {
    connected: true,
    send(message) {
      sent.push(message as (typeof sent)[number]);
      return true;
    },
    on: (event, listener) => events.on(event, listener),
  };
  const answer = (id: number, granted: boolean) =>
    events.emit("message", { type: "switchboard:slot-answer", id, granted });
  return { channel, sent, answer };
}

describe("a worker's slots, asked of the primary", () => {
  it("resolves with the primary's answer", async () => {
    const primary = fakePrimary();
    const slots = primarySlots(primary.channel, 1000);
    const reserved = slots.reserve("198.51.100.1");
    expect(primary.sent).toEqual([
      { type: "switchboard:slot-reserve", address: "198.51.100.1", id: 0 },
    ]);
    primary.answer(0, true);
    await expect(reserved).resolves.toBe(true);
    slots.release("198.51.100.1");
    expect(primary.sent.at(-1)).toEqual({
      type: "switchboard:slot-release",
      address: "198.51.100.1",
    });
  });

  it("rejects with SWB_ERR_REQUEST_TIMEOUT when the primary does not answer, and gives back a slot granted late", async () => {
    vi.useFakeTimers();
    try {
      const primary = fakePrimary();
      const slots = primarySlots(primary.channel, 1000);
      const outcome = Promise.resolve(slots.reserve("198.51.100.1")).catch((err: unknown) => err);
      await vi.advanceTimersByTimeAsync(1000);
      expect(await outcome).toMatchObject({ code: ErrorCode.REQUEST_TIMEOUT });
      // The handshake was refused: the slot the primary grants now is nobody's.
      primary.answer(0, true);
      expect(primary.sent.at(-1)).toEqual({
        type: "switchboard:slot-release",
        address: "198.51.100.1",
      });
    } finally {
      vi.useRealTimers();
    }
  });

  it("rejects at once without an IPC channel", async () => {
    const slots = primarySlots({ connected: false, on: () => undefined }, 1000);
    await expect(Promise.resolve(slots.reserve("a"))).rejects.toMatchObject({
      code: ErrorCode.CLOSED,
    });
  });
});

describe("admission when the slots cannot be had", () => {
  const request = () => {
    const socket = Object.assign(new EventEmitter(), {
      remoteAddress: "127.0.0.1",
      destroyed: false,
    });
    return {
      socket,
      headers: {},
      url: "/socket.io/?EIO=4&transport=polling",
    } as unknown as IncomingMessage;
  };
  const decide = (allow: ReturnType<typeof createAdmission>["allowRequest"]) =>
    new Promise<{ err: string | null; ok: boolean }>((resolve) =>
      allow(request(), (err, ok) => resolve({ err, ok })),
    );

  it("refuses the handshake (fail closed), logs once until they answer again, and counts the refusal", async () => {
    let failing = true;
    const slots: ConnectionSlots = {
      reserve: () => (failing ? Promise.reject(new Error("no answer")) : Promise.resolve(true)),
      release: () => undefined,
    };
    const logger = { debug: vi.fn(), info: vi.fn(), warn: vi.fn(), error: vi.fn() };
    const refused: string[] = [];
    const admission = createAdmission({
      origins: [],
      maxConnectionsPerIp: 3,
      proxies: trustedProxies([]),
      isDraining: () => false,
      logger: logger as unknown as Logger,
      slots,
      onRefused: (reason) => refused.push(reason),
    });
    expect(await decide(admission.allowRequest)).toEqual({
      err: "admission unavailable",
      ok: false,
    });
    expect(await decide(admission.allowRequest)).toEqual({
      err: "admission unavailable",
      ok: false,
    });
    expect(logger.error).toHaveBeenCalledTimes(1);
    expect(refused).toEqual(["admission_unavailable", "admission_unavailable"]);
    failing = false;
    expect(await decide(admission.allowRequest)).toEqual({ err: null, ok: true });
    expect(logger.info).toHaveBeenCalledTimes(1);
  });
});
