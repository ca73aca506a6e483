import { describe, expect, it } from "vitest";
import { createGatewayMetrics } from "../../services/gateway/metrics.js";

describe("gateway metrics", () => {
  it("export a backplane's counters as *_total and the keys it names as gauges without _total", async () => {
    const stats = { published: 3, reconnects: 1, bindings: 2, label: "not a number" };
    const metrics = createGatewayMetrics(
      { gateway: "gw-1", backplane: "amqp" },
      { stats: () => stats, statsGauges: ["bindings"] },
    );
    stats.published = 5;
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^switchboard_backplane_published_total\{[^}]*gateway="gw-1"[^}]*\} 5$/m);
    expect(text).toMatch(/^switchboard_backplane_reconnects_total\{[^}]*\} 1$/m);
    expect(text).toMatch(/^switchboard_backplane_bindings\{[^}]*\} 2$/m);
    expect(text).not.toContain("switchboard_backplane_bindings_total");
    expect(text).not.toContain("switchboard_backplane_label");
  });

  it("declare the publishing counters with their names and labels", async () => {
    const metrics = createGatewayMetrics({ gateway: "gw-1", backplane: "memory" });
    metrics.ingestedCommands.inc({ path: "amqp", outcome: "delivered" });
    metrics.httpPublishes.inc({ status: "202" });
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^switchboard_ingest_commands_total\{[^}]*path="amqp"[^}]*\} 1$/m);
    expect(text).toMatch(/^switchboard_http_publish_requests_total\{[^}]*status="202"[^}]*\} 1$/m);
  });

  it("count client events by event and result, each scrape adding what came since the last", async () => {
    const metrics = createGatewayMetrics({ gateway: "gw-1", backplane: "memory" });
    const line = (event: string, result: string, n: number) =>
      new RegExp(
        `^switchboard_gateway_client_events_total\\{event="${event}",result="${result}"[^}]*\\} ${n}$`,
        "m",
      );
    metrics.clientEvent("publish", "ok");
    metrics.clientEvent("publish", "ok");
    metrics.clientEvent("join", "forbidden");
    let text = await metrics.registry.metrics();
    expect(text).toMatch(line("publish", "ok", 2));
    expect(text).toMatch(line("join", "forbidden", 1));
    metrics.clientEvent("publish", "ok");
    text = await metrics.registry.metrics();
    expect(text).toMatch(line("publish", "ok", 3));
    expect(text).toMatch(line("join", "forbidden", 1));
  });
});
