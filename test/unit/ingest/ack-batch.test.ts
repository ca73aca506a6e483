import { describe, expect, it } from "vitest";
import { ErrorCode, SwitchboardError } from "../../../core/errors.js";
import { AckBatch } from "../../../services/ingest/ack-batch.js";
import { deterministicFailure } from "../../../services/ingest/failures.js";

function recorder() {
  const acks: Array<[number, boolean | undefined]> = [];
  return {
    acks,
    channel: { ack: (message: number, allUpTo?: boolean) => void acks.push([message, allUpTo]) },
  };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("ack batch", () => {
  it("one multiple ack for every `every` settled messages, covering the last one", () => {
    const { acks, channel } = recorder();
    const batch = new AckBatch(channel, 3);
    for (const message of [1, 2, 3, 4, 5, 6, 7]) batch.settled(message);
    expect(acks).toEqual([
      [3, true],
      [6, true],
    ]);
  });

  it("later() acknowledges the rest after the current burst, flush() at once, and nothing twice", async () => {
    const { acks, channel } = recorder();
    const batch = new AckBatch(channel, 100);
    batch.settled(1);
    batch.settled(2);
    batch.later();
    expect(acks).toEqual([]);
    await nextTurn();
    expect(acks).toEqual([[2, true]]);
    batch.settled(3);
    batch.flush();
    batch.flush();
    batch.later();
    await nextTurn();
    expect(acks).toEqual([
      [2, true],
      [3, true],
    ]);
  });

  it("a closed channel throwing on ack is not an error of the batch", () => {
    const batch = new AckBatch<number>(
      {
        ack: () => {
          throw new Error("Channel closed");
        },
      },
      1,
    );
    expect(() => batch.settled(1)).not.toThrow();
  });
});

describe("which failed hand-overs are dead letters at once", () => {
  it.each([
    ["a stack overflow", new RangeError("Maximum call stack size exceeded")],
    ["a value an encoder refuses", new TypeError("Do not know how to serialize a BigInt")],
    ["an invalid argument", new SwitchboardError(ErrorCode.INVALID_ARGUMENT, "unknown namespace")],
  ])("%s: the same on every try", (_, err) => {
    expect(deterministicFailure(err)).toEqual({
      code: "undeliverable",
      reason: `cannot be delivered: ${err.message}`,
    });
  });

  it.each([
    ["a broker connection error", new SwitchboardError(ErrorCode.BROKER_CONNECTION, "down")],
    ["a timeout", new SwitchboardError(ErrorCode.PUBLISH_TIMEOUT, "slow")],
    ["any other error", new Error("Connection is closed.")],
    ["a thrown string", "oops"],
  ])("%s: may pass later, retried", (_, err) => {
    expect(deterministicFailure(err)).toBeUndefined();
  });
});
