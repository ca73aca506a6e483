import { randomBytes } from "node:crypto";
import type * as SocketIoAdapter from "socket.io-adapter";
import type { ClusterAdapterWithHeartbeat } from "socket.io-adapter";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";
import { MessageType } from "./cjs.js";

export type RequestKind = "fetchSockets" | "serverSideEmit" | "allRooms";
export type Settle = (error: SwitchboardError | null, responses: unknown[]) => void;

/**
 * One in-flight cluster request, in the shape `ClusterAdapterWithHeartbeat`
 * gives the entries of its request map: its `onResponse` appends answers and
 * strikes the answering node off `missingUids`, its `removeNode` strikes off a
 * node that leaves, and either of them calls `resolve` once nobody is missing
 * (`resolve(responses)` for FETCH_SOCKETS, `resolve(null, responses)` for
 * SERVER_SIDE_EMIT). `expected` and `settle` are ours: the timeout message
 * names the first, and the timeout and close settle through the second.
 */
interface PendingRequest {
  type: SocketIoAdapter.MessageType.FETCH_SOCKETS | SocketIoAdapter.MessageType.SERVER_SIDE_EMIT;
  resolve: (...args: never[]) => void;
  timeout: NodeJS.Timeout;
  missingUids: Set<string>;
  responses: unknown[];
  expected: number;
  settle: Settle;
}

/**
 * What socket.io-adapter declares `private` but a subclass has to share: the
 * member table (`nodesMap`: uid -> last message time) and the request maps.
 * Typed once here and checked when the adapter is built, so an upgrade that
 * renames them fails at start-up with this message, not silently.
 */
export interface BaseInternals {
  nodesMap: Map<string, number>;
  requests: Map<string, PendingRequest>;
  customRequests: Map<string, PendingRequest>;
}

export function baseInternals(adapter: ClusterAdapterWithHeartbeat): BaseInternals {
  const internals = adapter as unknown as Partial<BaseInternals>;
  if (
    !(internals.nodesMap instanceof Map) ||
    !(internals.requests instanceof Map) ||
    !(internals.customRequests instanceof Map)
  ) {
    throw new Error(
      "socket.io-adapter's ClusterAdapterWithHeartbeat no longer has nodesMap/requests/customRequests; this version is not supported",
    );
  }
  // One map under both names. The heartbeat variant keeps in-flight requests
  // in `customRequests` (where its onResponse and removeNode find them); the
  // plain ClusterAdapter code that used `requests` is entirely overridden by
  // it, and `requests` is where users and the official adapters' tests look
  // (`adapter.requests.size === 0` once everything completed or timed out).
  internals.requests = internals.customRequests;
  return internals as BaseInternals;
}

/** The texts of @socket.io/redis-adapter, which user code and tests match on. */
function timeoutMessage(kind: RequestKind, received: number, expected: number): string {
  switch (kind) {
    case "fetchSockets":
      return "timeout reached while waiting for fetchSockets response";
    case "allRooms":
      return "timeout reached while waiting for allRooms response";
    case "serverSideEmit":
      return `timeout reached: only ${received} responses received out of ${expected}`;
  }
}

export interface RequestOptions {
  nsp: string;
  partialResults: boolean;
  logger: Logger;
  onPartial: (missingNodes: number) => void;
}

/**
 * Starts a request in the base class's map, waiting for every node of
 * `nodesMap`; returns its id (to put in the message). What the base lacks and
 * this adds: the timeout we honour (`timeoutMs`), the official adapters'
 * messages on expiry, `partialResults`, and `allRooms` answers (kept as a
 * FETCH_SOCKETS-shaped list, so the base's removeNode settles them too).
 *
 * `settle` is called once: on the last answer, when the last missing node
 * leaves, or at the timeout. The user's callback is never run inside a
 * try/catch: what it throws surfaces as it does with the official adapters.
 */
export function startRequest(
  internals: BaseInternals,
  kind: RequestKind,
  initial: unknown[],
  timeoutMs: number,
  settle: Settle,
  opts: RequestOptions,
): string {
  const requestId = randomBytes(8).toString("hex");
  const missingUids = new Set(internals.nodesMap.keys());
  const expire = () => {
    const request = internals.requests.get(requestId);
    if (!request) return;
    internals.requests.delete(requestId);
    const missingNodes = [...request.missingUids];
    const fields = { nsp: opts.nsp, kind, requestId, missingNodes };
    if (opts.partialResults) {
      opts.onPartial(missingNodes.length);
      opts.logger.warn(fields, "cluster request timed out; resolving with partial results");
      settle(null, request.responses);
      return;
    }
    const received = request.expected - missingNodes.length;
    const message = timeoutMessage(kind, received, request.expected);
    settle(
      new SwitchboardError(ErrorCode.REQUEST_TIMEOUT, message, { details: fields }),
      request.responses,
    );
  };
  const request: PendingRequest = {
    type: kind === "serverSideEmit" ? MessageType.SERVER_SIDE_EMIT : MessageType.FETCH_SOCKETS,
    resolve: (kind === "serverSideEmit"
      ? settle
      : (responses: unknown[]) => settle(null, responses)) as PendingRequest["resolve"],
    timeout: setTimeout(expire, timeoutMs),
    missingUids,
    responses: initial,
    expected: missingUids.size,
    settle,
  };
  internals.requests.set(requestId, request);
  return requestId;
}

/** Records `node`'s answer to an `allRooms` request (the base knows no such kind). */
export function answerAllRooms(
  internals: BaseInternals,
  requestId: string,
  node: string,
  rooms: readonly unknown[],
): void {
  const request = internals.requests.get(requestId);
  if (!request) return; // late (after the timeout), or not ours
  request.responses.push(...rooms);
  request.missingUids.delete(node);
  if (request.missingUids.size > 0) return;
  clearTimeout(request.timeout);
  internals.requests.delete(requestId);
  request.settle(null, request.responses);
}

/** Settles everything still pending with `error` (on close); the map is empty afterwards. */
export function abortAll(internals: BaseInternals, error: SwitchboardError): void {
  const pending = [...internals.requests.values()];
  internals.requests.clear();
  for (const request of pending) {
    clearTimeout(request.timeout);
    request.settle(error, request.responses);
  }
}
