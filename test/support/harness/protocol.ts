/**
 * The control channel between a test and a harness gateway process (test/support/harness/node.ts).
 * The test sends `{id, op, args}` over the child's IPC channel; the process answers `{id, result}`
 * or `{id, error}` (the error's message). IPC is JSON: a Buffer travels as `{type:"Buffer", data}`
 * (what `JSON.stringify` makes of it) and the harness turns it back into a Buffer before emitting.
 */

/** Selects sockets, like `io.of(nsp).to(to).except(except)` with flags. */
export interface Selection {
  /** Namespace. @default "/" */
  nsp?: string;
  /** Rooms (or socket ids) to target; none means everyone in the namespace. */
  to?: string[];
  except?: string[];
  /** `.local`: only this process's sockets. */
  local?: boolean;
}

export interface NodeInfo {
  gatewayId: string;
  pid: number;
}

/** A socket as `fetchSockets()` describes it, JSON-safe. */
export interface SocketSnapshot {
  id: string;
  rooms: string[];
  data: unknown;
  handshake: {
    address: string;
    url: string;
    query: Record<string, unknown>;
    auth: Record<string, unknown>;
    headers: Record<string, unknown>;
  };
}

/** A server-side event this process received from another one (`serverSideEmit`). */
export interface ReceivedServerEvent {
  event: typeof SERVER_EVENT_RECORD | typeof SERVER_EVENT_ASK;
  args: unknown[];
}

/** Recorded by every harness process; no acknowledgement. */
export const SERVER_EVENT_RECORD = "harness:record";
/** Recorded by every harness process, which answers `{gateway, args}`. */
export const SERVER_EVENT_ASK = "harness:ask";

/**
 * A server-side event whose first argument starts with this meets, before the recording listener,
 * a listener that throws (harness/ops.ts): the conformance suite checks the others still run.
 */
export const THROWING_PREFIX = "throw:";

export interface ServerAskReply {
  gateway: string;
  args: unknown[];
}

/** Namespace every harness process creates beside "/" (clients there can call `whoami`). */
export const SECOND_NAMESPACE = "/second";

/** The operations of one harness gateway process: `op` -> its `args` and `result`. */
export interface ControlOps {
  info: { args: undefined; result: NodeInfo };
  /** `io.of(nsp).to().except()[.local][.volatile].emit(event, ...args)` */
  emit: {
    args: Selection & { volatile?: boolean; event: string; args: unknown[] };
    result: true;
  };
  /** `….timeout(timeoutMs).emitWithAck(event, ...args)`: the clients' acks. */
  emitWithAck: {
    args: Selection & { timeoutMs: number; event: string; args: unknown[] };
    result: unknown[];
  };
  fetchSockets: { args: Selection & { timeoutMs?: number }; result: SocketSnapshot[] };
  socketsJoin: { args: Selection & { rooms: string[] }; result: true };
  socketsLeave: { args: Selection & { rooms: string[] }; result: true };
  disconnectSockets: { args: Selection & { close: boolean }; result: true };
  /** Sets `socket.data` of a socket of this process; false when it is not here. */
  setData: { args: { nsp?: string; socketId: string; data: unknown }; result: boolean };
  /** `io.serverSideEmit(SERVER_EVENT_RECORD, ...args)` */
  serverSideEmit: { args: { args: unknown[] }; result: true };
  /** `io.serverSideEmitWithAck(SERVER_EVENT_ASK, ...args)`: one reply per other process. */
  serverSideEmitWithAck: { args: { args: unknown[] }; result: ServerAskReply[] };
  /** Server-side events this process received so far. */
  serverSideReceived: { args: undefined; result: ReceivedServerEvent[] };
  serverCount: { args: { nsp?: string }; result: number };
}

export type ControlOp = keyof ControlOps;

/** Ops of the cluster primary (test/support/harness/cluster.ts); anything else is relayed. */
export interface PrimaryOps {
  workers: { args: undefined; result: NodeInfo[] };
  /** Forks one more worker and resolves once it serves. */
  fork: { args: undefined; result: NodeInfo };
  /** Runs `op` in the worker whose gateway id is `worker`. */
  relay: { args: { worker: string; op: ControlOp; args: unknown }; result: unknown };
}

export interface ControlRequest {
  id: number;
  op: string;
  args?: unknown;
}

export type ControlReply = { id: number; result: unknown } | { id: number; error: string };

export function isControlRequest(message: unknown): message is ControlRequest {
  const m = message as Partial<ControlRequest> | null;
  return (
    typeof m === "object" && m !== null && typeof m.id === "number" && typeof m.op === "string"
  );
}

export function isControlReply(message: unknown): message is ControlReply {
  const m = message as Record<string, unknown> | null;
  return (
    typeof m === "object" &&
    m !== null &&
    typeof m.id === "number" &&
    typeof m.op !== "string" &&
    ("result" in m || "error" in m)
  );
}

/** Sent by a cluster worker to its primary once it serves: `{type, gatewayId, pid}`. */
export const WORKER_READY = "harness:worker-ready";
