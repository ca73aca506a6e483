import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { Registry } from "prom-client";
import { bearerCheck } from "../gateway/bearer.js";
import { send } from "../gateway/http.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { AggregatorRegistry } = createRequire(import.meta.url)(
  "prom-client",
) as typeof import("prom-client");

/**
 * `GET /metrics` of `switchboard cluster`: answered by the primary with every worker's metrics
 * (prom-client's cluster aggregation over IPC), not by whichever worker a connection would reach.
 * Each worker's series keep their `gateway` label (`<GATEWAY_ID>-w<index>`), so nothing is
 * summed away: one scrape of the port sees the whole cluster, as one scrape of a gateway sees it.
 */

/** True for a request head the primary answers itself (`GET`/`HEAD /metrics`). */
export function isMetricsRequest(requestLine: string): boolean {
  return /^(?:GET|HEAD) \/metrics(?:\?\S*)? HTTP\/1\.[01]$/.test(requestLine);
}

/** The primary's HTTP server for /metrics (connections are injected by the hand-over). */
export function createClusterMetricsServer(options: {
  metricsToken: string | undefined;
  headersTimeout: number;
  requestTimeout: number;
}): Server {
  const aggregator = new AggregatorRegistry();
  const allowed =
    options.metricsToken === undefined ? () => true : bearerCheck([options.metricsToken]);
  const server = createServer(
    { headersTimeout: options.headersTimeout, requestTimeout: options.requestTimeout },
    (req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
      if (!allowed(req)) {
        res.setHeader("www-authenticate", 'Bearer realm="metrics"');
        return send(res, 401, { error: "unauthorized" });
      }
      aggregator.clusterMetrics().then(
        (body) => {
          res.writeHead(200, { "content-type": aggregator.contentType });
          res.end(req.method === "HEAD" ? undefined : body);
        },
        () => send(res, 500, { error: "metrics_unavailable" }),
      );
    },
  );
  return server;
}

/** In a worker: answer the primary's metrics requests with this gateway's registry. */
export function serveMetricsToPrimary(registry: Registry): void {
  // The constructor adds prom-client's IPC listener; the registry answered is the gateway's own.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
}
