import { randomBytes } from "node:crypto";
import { ErrorCode, SwitchboardError } from "../../core/errors.js";
import type { Logger } from "../../core/logger.js";

export type Settle = (error: SwitchboardError | null, responses: unknown[]) => void;
export type RequestKind = "fetchSockets" | "serverSideEmit";

interface Pending {
  kind: RequestKind;
  missing: Set<string>;
  responses: unknown[];
  timer: NodeJS.Timeout;
  settle: Settle;
}

/**
 * Cluster requests awaiting one answer per node, as in socket.io-adapter
 * (`Map<requestId, pending>` with the set of nodes still to answer), plus
 * what the base lacks: a node that leaves is struck off every pending
 * request at once, and with `partialResults` a timeout resolves with what
 * arrived, logging and counting the missing node ids instead of rejecting.
 */
export class ClusterRequests {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly opts: {
      nsp: string;
      partialResults: boolean;
      logger: Logger;
      onPartial: (missingNodes: number) => void;
    },
  ) {}

  /** Registers a request waiting for `nodes`; returns its id (to put in the message). */
  start(
    kind: RequestKind,
    nodes: Iterable<string>,
    initial: unknown[],
    timeoutMs: number,
    settle: Settle,
  ): string {
    const requestId = randomBytes(8).toString("hex");
    const timer = setTimeout(() => this.expire(requestId), timeoutMs);
    this.pending.set(requestId, {
      kind,
      missing: new Set(nodes),
      responses: initial,
      timer,
      settle,
    });
    return requestId;
  }

  /** Records `node`'s answer (`responses` appended); completes the request when nobody is missing. */
  answer(requestId: string, node: string, responses: readonly unknown[]): void {
    const request = this.pending.get(requestId);
    if (!request) return; // late, or not ours
    request.responses.push(...responses);
    request.missing.delete(node);
    if (request.missing.size === 0) this.finish(requestId, null);
  }

  /** `node` left the cluster: stop waiting for it anywhere. */
  nodeGone(node: string): void {
    for (const [requestId, request] of [...this.pending]) {
      if (request.missing.delete(node) && request.missing.size === 0) this.finish(requestId, null);
    }
  }

  /** Settles everything still pending with `error` (on close). */
  abortAll(error: SwitchboardError): void {
    for (const requestId of [...this.pending.keys()]) this.finish(requestId, error);
  }

  private expire(requestId: string): void {
    const request = this.pending.get(requestId);
    if (!request) return;
    const missingNodes = [...request.missing];
    const fields = { nsp: this.opts.nsp, kind: request.kind, requestId, missingNodes };
    if (this.opts.partialResults) {
      this.opts.onPartial(missingNodes.length);
      this.opts.logger.warn(fields, "cluster request timed out; resolving with partial results");
      this.finish(requestId, null);
      return;
    }
    // Message text kept close to socket.io-adapter's, which users match on.
    const message = `timeout reached: missing ${missingNodes.length} responses`;
    this.finish(
      requestId,
      new SwitchboardError(ErrorCode.REQUEST_TIMEOUT, message, { details: fields }),
    );
  }

  private finish(requestId: string, error: SwitchboardError | null): void {
    const request = this.pending.get(requestId);
    if (!request) return;
    this.pending.delete(requestId);
    clearTimeout(request.timer);
    try {
      request.settle(error, request.responses);
    } catch (err) {
      this.opts.logger.error({ err, requestId }, "request callback threw");
    }
  }
}
