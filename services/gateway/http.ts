import type { IncomingMessage, ServerResponse } from "node:http";
import { bearerCheck } from "./bearer.js";
import { DEMO_PAGE } from "./demo-page.js";

export interface HttpRoutesOptions {
  isReady(): { ready: boolean; reasons: string[] };
  metrics(): Promise<{ contentType: string; body: string }>;
  /** METRICS_TOKEN: /metrics answers 401 without `Authorization: Bearer <token>`. */
  metricsToken?: string | undefined;
  /** Extra routes mounted by other services (e.g. POST /v1/publish); true when handled. */
  extra?: Array<(req: IncomingMessage, res: ServerResponse) => boolean>;
}

/** Plain HTTP next to Socket.IO on the same port (Socket.IO answers its own path first). */
export function createHttpHandler(options: HttpRoutesOptions) {
  const metricsAllowed =
    options.metricsToken === undefined ? () => true : bearerCheck([options.metricsToken]);
  return (req: IncomingMessage, res: ServerResponse): void => {
    for (const route of options.extra ?? []) {
      if (route(req, res)) return;
    }
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      return send(res, 405, { error: "method_not_allowed" });
    }
    switch (path) {
      case "/healthz":
        return send(res, 200, { status: "ok" });
      case "/readyz": {
        const { ready, reasons } = options.isReady();
        return send(
          res,
          ready ? 200 : 503,
          ready ? { status: "ready" } : { status: "not_ready", reasons },
        );
      }
      case "/metrics":
        if (!metricsAllowed(req)) {
          res.setHeader("www-authenticate", 'Bearer realm="metrics"');
          return send(res, 401, { error: "unauthorized" });
        }
        options.metrics().then(
          ({ contentType, body }) => {
            res.writeHead(200, { "content-type": contentType });
            res.end(body);
          },
          () => send(res, 500, { error: "metrics_unavailable" }),
        );
        return;
      case "/":
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
        res.end(DEMO_PAGE);
        return;
      default:
        return send(res, 404, { error: "not_found" });
    }
  };
}

export function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
