import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { LoadtestReport } from "./report.js";

const require = createRequire(import.meta.url);

/** uPlot's browser build and stylesheet, inlined into every report: the page opens offline. */
function uplotAssets(): { js: string; css: string } {
  // The package's main entry lives in dist/, beside the browser build.
  const dist = dirname(require.resolve("uplot"));
  const read = (name: string) => readFileSync(join(dist, name), "utf8");
  return { js: read("uPlot.iife.min.js"), css: read("uPlot.min.css") };
}

/** Text safe inside a <script> element: no `</script>`, no `<!--`. */
function scriptSafe(text: string): string {
  return text.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** One self-contained HTML page: the headline numbers, and uPlot charts of the timeline. */
export function renderHtml(report: LoadtestReport): string {
  const { js, css } = uplotAssets();
  const data = JSON.stringify(report).replace(/</g, "\\u003c");
  const l = report.latencyMs;
  const rows: [string, string][] =
    report.scenario === "steady"
      ? [
          ["sent", String(report.sent)],
          ["expected", String(report.expected)],
          ["delivered", String(report.delivered)],
          ["lost", `${report.lost} (${report.lossPercent}%)`],
          ["duplicates", String(report.duplicates)],
          ["out of order", String(report.outOfOrder)],
          ["msgs/s sent / delivered", `${report.sentPerSec} / ${report.deliveredPerSec}`],
          [
            "latency p50 / p90 / p99 / p99.9 / max",
            `${l.p50} / ${l.p90} / ${l.p99} / ${l.p999} / ${l.max} ms`,
          ],
        ]
      : [
          ["connections accepted", String(report.connections.accepted)],
          ["attempts", String(report.connections.attempts)],
          ["accepted/s", String(report.connections.acceptedPerSec)],
        ];
  rows.push(
    ["connect p50 / p99", `${report.connectMs.p50} / ${report.connectMs.p99} ms`],
    [
      "clients joined / failed",
      `${report.connections.members} / ${report.connections.failed} of ${report.connections.target}`,
    ],
    [
      "disconnects / reconnects",
      `${report.connections.disconnects} / ${report.connections.reconnects}`,
    ],
    [
      "generator CPU / event-loop delay p99 (per worker)",
      `${report.generator.perWorker.map((w) => `${w.cpuPercent.average}% / ${w.eventLoopDelayMs.p99} ms`).join(", ") || "n/a"}${report.generator.saturated ? ` — saturated: ${report.generator.saturation}` : ""}`,
    ],
  );
  const list = (record: Record<string, number>) =>
    Object.entries(record)
      .map(([k, n]) => `<tr><td>${escapeHtml(k)}</td><td>${n}</td></tr>`)
      .join("") || '<tr><td colspan="2">none</td></tr>';
  const title = `switchboard loadtest ${report.scenario}${report.label ? ` — ${report.label}` : ""}`;
  const verdict =
    report.thresholds.failures.length > 0
      ? `<p class="fail">${report.thresholds.failures.map(escapeHtml).join("<br>")}</p>`
      : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${css}
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse}td{padding:2px 12px 2px 0;vertical-align:top}
td:first-child{color:#555}.fail{color:#b00;font-weight:600}.chart{margin:8px 0}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<p>${escapeHtml(report.startedAt)} · ${escapeHtml(report.target.urls.join(", "))} ·
${report.target.clients} clients · ${report.target.transport}${report.interrupted ? " · interrupted" : ""}</p>
${verdict}
<table id="summary">${rows.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join("")}</table>
<h2>Throughput</h2><div id="throughput" class="chart"></div>
<h2>Latency over time</h2><div id="latency" class="chart"></div>
<h2>Latency distribution</h2><div id="distribution" class="chart"></div>
<h2>Gateways</h2><table id="gateways">${list(report.gateways)}</table>
<h2>Errors</h2><table id="errors">${list(report.errors)}</table>
<script>${scriptSafe(js)}</script>
<script id="report" type="application/json">${data}</script>
<script>${scriptSafe(CHARTS)}</script>
</body></html>
`;
}

/** Runs in the page: draws the three charts from the embedded report. */
const CHARTS = `
(function () {
  var report = JSON.parse(document.getElementById("report").textContent);
  var width = Math.min(960, document.body.clientWidth || 960);
  var tl = report.timeline;
  var t = tl.map(function (p) { return p.t; });
  function chart(id, title, xLabel, yLabel, series, data, xValues, extraAxes) {
    var x = { label: xLabel };
    if (xValues) x.values = xValues;
    var opts = {
      title: title, width: width, height: 260,
      scales: { x: { time: false } },
      axes: [x, { label: yLabel }].concat(extraAxes || []),
      series: [{ label: xLabel }].concat(series),
    };
    return new uPlot(opts, data, document.getElementById(id));
  }
  chart("throughput", "messages per second", "seconds", "msgs/s",
    [{ label: "sent/s", stroke: "#1f77b4", width: 2 },
     { label: "delivered/s", stroke: "#2ca02c", width: 2 },
     { label: "connected", stroke: "#999", dash: [4, 4], scale: "c" }],
    [t, tl.map(function (p) { return p.sentPerSec; }), tl.map(function (p) { return p.deliveredPerSec; }),
     tl.map(function (p) { return p.connected; })],
    null, [{ scale: "c", side: 1, label: "connected", grid: { show: false } }]);
  chart("latency", "end-to-end latency", "seconds", "ms",
    [{ label: "p50", stroke: "#1f77b4", width: 2 }, { label: "p99", stroke: "#d62728", width: 2 }],
    [t, tl.map(function (p) { return p.p50; }), tl.map(function (p) { return p.p99; })]);
  var d = report.distribution;
  // x: "nines" (0 = p0, 1 = p90, 2 = p99, 3 = p99.9…), as HdrHistogram plots it.
  var nines = d.map(function (p) { return p.percentile >= 100 ? 6 : -Math.log10(1 - p.percentile / 100); });
  chart("distribution", "latency by percentile", "percentile", "ms",
    [{ label: "latency", stroke: "#9467bd", width: 2 }],
    [nines, d.map(function (p) { return p.ms; })],
    function (u, splits) {
      return splits.map(function (v) { return v >= 6 ? "max" : (100 - 100 / Math.pow(10, v)).toPrecision(Math.max(2, Math.ceil(v) + 2)) + "%"; });
    });
  document.body.setAttribute("data-charts", String(document.querySelectorAll(".uplot").length));
})();
`;
