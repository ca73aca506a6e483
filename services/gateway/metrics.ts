import { createRequire } from "node:module";
import type { Backplane } from "../../adapters/backplane.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Counter, collectDefaultMetrics, Gauge, Registry } = createRequire(import.meta.url)(
  "prom-client",
) as typeof import("prom-client");

/** Gateway metrics on a registry of its own, so several gateways can live in one test process. */
export function createGatewayMetrics(
  labels: { gateway: string; backplane: string },
  backplane?: Pick<Backplane, "stats" | "statsGauges">,
) {
  const backplaneStats = backplane?.stats;
  const gauges = new Set(backplane?.statsGauges ?? []);
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: "switchboard_process_" });
  // Sampled at scrape time, whoever scrapes (the gateway's /metrics, or a cluster primary).
  let sample: () => { connections: number; ready: boolean } = () => ({
    connections: 0,
    ready: false,
  });
  const connections = new Gauge({
    name: "switchboard_gateway_connections",
    help: "Socket.IO connections currently open on this gateway",
    registers: [registry],
    collect() {
      this.set(sample().connections);
    },
  });
  // Counted in plain numbers on the hot path and added to the counter at scrape time: prom-client's
  // `inc` with labels builds a hash string of them on every call (one per client event).
  const eventCounts = new Map<string, Map<string, { count: number; reported: number }>>();
  new Counter({
    name: "switchboard_gateway_client_events_total",
    help: "Client protocol events handled, by event and result (ok, the ack error, or missing_ack)",
    labelNames: ["event", "result"],
    registers: [registry],
    collect() {
      for (const [event, results] of eventCounts) {
        for (const [result, entry] of results) {
          if (entry.count === entry.reported) continue;
          this.inc({ event, result }, entry.count - entry.reported);
          entry.reported = entry.count;
        }
      }
    },
  });
  /** One client event handled; `event` and `result` come from bounded sets (protocol.ts). */
  const clientEvent = (event: string, result: string) => {
    let results = eventCounts.get(event);
    if (results === undefined) {
      results = new Map();
      eventCounts.set(event, results);
    }
    const entry = results.get(result);
    if (entry === undefined) results.set(result, { count: 1, reported: 0 });
    else entry.count += 1;
  };
  const disconnects = new Counter({
    name: "switchboard_gateway_disconnects_total",
    help: "Client disconnections, by Socket.IO reason",
    labelNames: ["reason"],
    registers: [registry],
  });
  const slowConsumers = new Counter({
    name: "switchboard_gateway_slow_consumer_disconnects_total",
    help: "Clients disconnected for having more than MAX_CLIENT_BUFFER_BYTES waiting to be sent",
    registers: [registry],
  });
  const handshakeRefusals = new Counter({
    name: "switchboard_gateway_handshake_refusals_total",
    help: "Socket.IO connections refused at the handshake, by code (missing_token, invalid_token…)",
    labelNames: ["code"],
    registers: [registry],
  });
  const ready = new Gauge({
    name: "switchboard_gateway_ready",
    help: "1 when the gateway is ready (backplane connected, not draining)",
    registers: [registry],
    collect() {
      this.set(sample().ready ? 1 : 0);
    },
  });
  const ingestedCommands = new Counter({
    name: "switchboard_ingest_commands_total",
    help: "Queued publish commands handled, by path (amqp, redis) and outcome (delivered, dead, retried)",
    labelNames: ["path", "outcome"],
    registers: [registry],
  });
  const httpPublishes = new Counter({
    name: "switchboard_http_publish_requests_total",
    help: "POST /v1/publish requests, by HTTP status",
    labelNames: ["status"],
    registers: [registry],
  });
  // The backplane's own counters (published, dropped, received…) and the gauges it names
  // (current values, like AMQP `bindings`), read at scrape time.
  const read = (key: string): number | undefined => {
    const value = (backplaneStats?.() as Record<string, unknown> | undefined)?.[key];
    return typeof value === "number" ? value : undefined;
  };
  for (const key of Object.keys(backplaneStats?.() ?? {})) {
    if (read(key) === undefined) continue;
    const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    const gaugeOnly = gauges.has(key);
    new Gauge({
      name: `switchboard_backplane_${snake}${gaugeOnly ? "" : "_total"}`,
      help: `Backplane ${key} ${gaugeOnly ? "(current)" : "since start"}`,
      registers: [registry],
      collect() {
        const value = read(key);
        if (value !== undefined) this.set(value);
      },
    });
  }
  return {
    registry,
    /** What the connections and ready gauges read when scraped. */
    sampleWith(fn: () => { connections: number; ready: boolean }) {
      sample = fn;
    },
    connections,
    clientEvent,
    disconnects,
    slowConsumers,
    handshakeRefusals,
    ready,
    ingestedCommands,
    httpPublishes,
  };
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
