/** Counters since the transport started; `stats()` returns a copy. */
export interface TransportStats {
  /** Messages handed to the channel. */
  published: number;
  /** Messages not published: disconnected, back-pressure bound, timeout, unencodable. */
  dropped: number;
  /** Frames delivered from this node's queue (any namespace), its own messages back included. */
  received: number;
  /**
   * Of `received`, broadcasts from other nodes and emitters (lets tests and
   * metrics prove room routing). A node's own broadcasts coming back are not
   * decoded, so not counted.
   */
  receivedBroadcasts: number;
  /** Frames dropped as garbage or from another wire version. */
  decodeErrors: number;
  /** Decoded messages whose handler threw (logged and dropped). */
  handlerErrors: number;
  /** Successful re-setups after a lost channel or connection. */
  reconnects: number;
  /** Routing keys currently bound to this node's queue. */
  bindings: number;
  /** Requests resolved with partial results (`partialResults: true`). */
  partialResults: number;
  /** Node answers missing from those partial results. */
  missingResponses: number;
}

export function emptyStats(): TransportStats {
  return {
    published: 0,
    dropped: 0,
    received: 0,
    receivedBroadcasts: 0,
    decodeErrors: 0,
    handlerErrors: 0,
    reconnects: 0,
    bindings: 0,
    partialResults: 0,
    missingResponses: 0,
  };
}
