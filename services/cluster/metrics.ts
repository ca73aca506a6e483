import cluster, { type Worker } from "node:cluster";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { MetricObjectWithValues, MetricValue, Registry } from "prom-client";
import { bearerCheck } from "../gateway/bearer.js";
import { send } from "../gateway/http.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { AggregatorRegistry } = createRequire(import.meta.url)(
  "prom-client",
) as typeof import("prom-client");

/**
 * `GET /metrics` of `switchboard cluster`: answered by the primary with every ready worker's
 * metrics, asked over IPC and merged with prom-client's cluster aggregation, not by whichever
 * worker a connection would reach. Each worker's series keep their `gateway` label
 * (`<GATEWAY_ID>-w<index>`), so nothing is summed away: one scrape of the port sees the whole
 * cluster. A worker still loading is not asked (it could not answer yet), and one that does not
 * answer within ANSWER_MS is left out of that scrape rather than failing it.
 */

const REQUEST = "switchboard:metrics-request";
const RESPONSE = "switchboard:metrics-response";
const ANSWER_MS = 3000;

/** What `registry.getMetricsAsJSON()` gives, as it crosses IPC. */
type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

interface MetricsResponse {
  type: typeof RESPONSE;
  id: number;
  metrics: MetricsJson;
}

/** True for a request head the primary answers itself (`GET`/`HEAD /metrics`). */
export function isMetricsRequest(requestLine: string): boolean {
  return /^(?:GET|HEAD) \/metrics(?:\?\S*)? HTTP\/1\.[01]$/.test(requestLine);
}

/** The primary's HTTP server for /metrics (connections are injected by the hand-over). */
export function createClusterMetricsServer(options: {
  metricsToken: string | undefined;
  headersTimeout: number;
  requestTimeout: number;
  /** The workers that are ready to answer. */
  workers(): Worker[];
}): Server {
  const allowed =
    options.metricsToken === undefined ? () => true : bearerCheck([options.metricsToken]);
  let nextId = 0;
  const collect = () =>
    new Promise<MetricsJson[]>((resolve) => {
      const id = nextId++;
      const asked = options.workers().filter((worker) => worker.isConnected());
      const answers: MetricsJson[] = [];
      let pending = asked.length;
      const finish = () => {
        clearTimeout(timer);
        cluster.off("message", onMessage);
        resolve(answers);
      };
      const onMessage = (_worker: Worker, message: unknown) => {
        const m = message as Partial<MetricsResponse> | null;
        if (m?.type !== RESPONSE || m.id !== id || !Array.isArray(m.metrics)) return;
        answers.push(m.metrics);
        if (--pending === 0) finish();
      };
      const timer = setTimeout(finish, ANSWER_MS);
      cluster.on("message", onMessage);
      if (pending === 0) return finish();
      for (const worker of asked) worker.send({ type: REQUEST, id });
    });
  return createServer(
    { headersTimeout: options.headersTimeout, requestTimeout: options.requestTimeout },
    (req: IncomingMessage, res: ServerResponse) => {
      res.shouldKeepAlive = false;
      if (!allowed(req)) {
        res.setHeader("www-authenticate", 'Bearer realm="metrics"');
        return send(res, 401, { error: "unauthorized" });
      }
      collect()
        .then((answers) => {
          const merged = AggregatorRegistry.aggregate(answers);
          return merged.metrics().then((body) => ({ body, contentType: merged.contentType }));
        })
        .then(
          ({ body, contentType }) => {
            res.writeHead(200, { "content-type": contentType });
            res.end(req.method === "HEAD" ? undefined : body);
          },
          () => send(res, 500, { error: "metrics_unavailable" }),
        );
    },
  );
}

/** In a worker: answer the primary's metrics requests with this gateway's registry. */
export function serveMetricsToPrimary(registry: Registry): void {
  process.on("message", (message: unknown) => {
    const m = message as { type?: unknown; id?: unknown } | null;
    if (m?.type !== REQUEST || typeof m.id !== "number") return;
    const id = m.id;
    registry.getMetricsAsJSON().then(
      (metrics) => {
        if (process.connected) process.send?.({ type: RESPONSE, id, metrics });
      },
      () => {
        if (process.connected) process.send?.({ type: RESPONSE, id, metrics: [] });
      },
    );
  });
}
