import cluster, { type Worker } from "node:cluster";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import { withTimeout } from "../../core/retry.js";
import { type ConnectionSlots, SlotTable } from "../gateway/admission.js";

/**
 * MAX_CONNECTIONS_PER_IP for the whole `switchboard cluster` port. Each worker derives the client
 * address of its handshakes (TRUSTED_PROXIES included) and asks the primary for a slot; the
 * primary checks and counts in one step, so handshakes on several workers at once never all see
 * the same free slot. The worker gives the slot back when the connection closes or the handshake
 * fails; the slots of a worker that exits are freed with it.
 *
 * A worker that gets no answer within `answerTimeoutMs` refuses the handshake (fail closed:
 * without the primary the limit cannot be known) and gives back the slot if the answer comes
 * late.
 */

const RESERVE = "switchboard:slot-reserve";
const RELEASE = "switchboard:slot-release";
const ANSWER = "switchboard:slot-answer";

/** How long a worker waits for the primary's answer, in ms. */
export const SLOT_ANSWER_TIMEOUT_MS = 5000;
/** Timed-out requests remembered, to give back a slot granted after all. */
const MAX_GIVEN_UP = 10_000;

interface SlotRequest {
  type: typeof RESERVE | typeof RELEASE;
  address: string;
  /** RESERVE only: echoed in the answer. */
  id?: number;
}

interface SlotAnswer {
  type: typeof ANSWER;
  id: number;
  granted: boolean;
}

function isSlotRequest(message: unknown): message is SlotRequest {
  const m = message as Partial<SlotRequest> | null;
  return (m?.type === RESERVE || m?.type === RELEASE) && typeof m.address === "string";
}

function isSlotAnswer(message: unknown): message is SlotAnswer {
  const m = message as Partial<SlotAnswer> | null;
  return m?.type === ANSWER && typeof m.id === "number" && typeof m.granted === "boolean";
}

/** In the primary: answers its workers' slot requests; a worker that exits frees its slots. */
export function keepSlotsForWorkers(max: number): SlotTable<Worker> {
  const table = new SlotTable<Worker>(max);
  cluster.on("message", (worker, message: unknown) => {
    if (!isSlotRequest(message)) return;
    if (message.type === RELEASE) return table.release(worker, message.address);
    const granted = table.reserve(worker, message.address);
    if (!worker.isConnected()) return table.releaseAll(worker);
    const answer: SlotAnswer = { type: ANSWER, id: message.id ?? -1, granted };
    worker.send(answer);
  });
  cluster.on("exit", (worker) => table.releaseAll(worker));
  return table;
}

/** The IPC channel to the primary (`process` in a worker; a fake in unit tests). */
export interface PrimaryChannel {
  readonly connected?: boolean;
  send?(message: unknown): boolean;
  on(event: "message", listener: (message: unknown) => void): unknown;
}

/** In a worker: slots asked of the primary. */
export function primarySlots(
  channel: PrimaryChannel = process,
  answerTimeoutMs = SLOT_ANSWER_TIMEOUT_MS,
): ConnectionSlots {
  let nextId = 0;
  const pending = new Map<number, (granted: boolean) => void>();
  // Requests given up on, until their answer comes; bounded, for a primary that never answers.
  const givenUp = new Map<number, string>();
  const send = (message: SlotRequest) => {
    if (!channel.send || !channel.connected) return false;
    channel.send(message);
    return true;
  };
  channel.on("message", (message) => {
    if (!isSlotAnswer(message)) return;
    const answer = pending.get(message.id);
    pending.delete(message.id);
    if (answer) return answer(message.granted);
    // Granted after this worker stopped waiting and refused the handshake: nobody holds it.
    const address = givenUp.get(message.id);
    givenUp.delete(message.id);
    if (message.granted && address !== undefined) send({ type: RELEASE, address });
  });
  return {
    reserve: (address) => {
      const id = nextId++;
      if (!send({ type: RESERVE, address, id })) {
        return Promise.reject(
          new SwitchboardError(ErrorCode.CLOSED, "no IPC channel to the cluster primary"),
        );
      }
      const answer = new Promise<boolean>((resolve) => pending.set(id, resolve));
      return withTimeout(answer, answerTimeoutMs, () => {
        pending.delete(id);
        givenUp.set(id, address);
        if (givenUp.size > MAX_GIVEN_UP) givenUp.delete(givenUp.keys().next().value as number);
        return new SwitchboardError(
          ErrorCode.REQUEST_TIMEOUT,
          `the cluster primary did not answer a connection slot request in ${answerTimeoutMs} ms`,
          { details: { answerTimeoutMs } },
        );
      });
    },
    release: (address) => void send({ type: RELEASE, address }),
  };
}
