// Bench-only probe, preloaded with `node --expose-gc --import <this file>` into every server
// process the bench starts (Switchboard gateways and the stock baselines alike). It answers the
// bench over the fork IPC channel and adds no HTTP route, so the product's code is unchanged:
//   {probe: "memory", gc: true} -> {probe: "memory", gc, rss, heapUsed, heapTotal, external}
// `gc` runs two full collections first (needs --expose-gc).
if (typeof process.send === "function") {
  process.on("message", (message) => {
    if (!message || typeof message !== "object" || message.probe !== "memory") return;
    const collect = message.gc === true && typeof globalThis.gc === "function";
    if (collect) {
      globalThis.gc();
      globalThis.gc();
    }
    const m = process.memoryUsage();
    process.send({
      probe: "memory",
      id: message.id,
      gc: collect,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
    });
  });
}
