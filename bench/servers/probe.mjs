// Bench-only probe, preloaded with `node --expose-gc --import <this file>` into every server
// process the bench starts (Switchboard gateways and the stock baselines alike). It answers the
// bench over the fork IPC channel and adds no HTTP route, so the product's code is unchanged:
//   {probe: "memory", gc: true} -> {probe: "memory", gc, rss, heapUsed, heapTotal, external}
//     `gc` runs two full collections first (needs --expose-gc).
//   {probe: "profile", action: "start"} -> {probe: "profile"}: starts a CPU profile (the V8
//     sampling profiler, 1 ms as --cpu-prof). Starting it blocks the loop (V8 logs every
//     compiled function), so the bench starts it with the warm-up and then
//   {probe: "profile", action: "mark"}: opens the window: from then on the event loop's delay
//     and GC pauses are watched, and only the samples after it are kept;
//   {probe: "profile", action: "stop", file} -> {probe: "profile", loop, gc}: writes the window's
//     .cpuprofile to `file` and answers the loop delay (ms: p50, p99, max) and the GC pauses
//     (count, total and max ms) in the window.
//   {probe: "alloc", action: "start"} / {probe: "alloc", action: "stop"} -> {probe: "alloc",
//     allocatedBytes, scavenges, markCompacts, gcMs}: bytes the process allocated on the V8 heap
//     between the two (growth of the heap in use plus what every GC in between freed, from
//     v8.GCProfiler's before/after figures) and the collections that ran: counts that hold on a
//     busy machine, where times do not.
//   {probe: "heapsample", action: "start", intervalBytes} / {probe: "heapsample", action: "stop",
//     file}: the V8 sampling heap profiler, keeping the samples of objects that were collected
//     since (so it shows who allocates, garbage included, not only what survives): writes a
//     .heapprofile (Chrome DevTools' format) to `file`.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks";
import { GCProfiler, getHeapStatistics } from "node:v8";

let profiling;
let allocating;
let sampling;

function startAlloc() {
  const profiler = new GCProfiler();
  profiler.start();
  allocating = { profiler, used: getHeapStatistics().used_heap_size };
}

function stopAlloc() {
  const { profiler, used } = allocating;
  allocating = undefined;
  const usedNow = getHeapStatistics().used_heap_size;
  const { statistics } = profiler.stop();
  let freed = 0;
  let scavenges = 0;
  let markCompacts = 0;
  let gcUs = 0;
  for (const gc of statistics) {
    freed += gc.beforeGC.heapStatistics.usedHeapSize - gc.afterGC.heapStatistics.usedHeapSize;
    if (gc.gcType === "Scavenge" || gc.gcType === "MinorMarkCompact") scavenges++;
    else if (gc.gcType === "MarkSweepCompact") markCompacts++;
    gcUs += gc.cost;
  }
  return {
    allocatedBytes: usedNow - used + freed,
    scavenges,
    markCompacts,
    gcs: statistics.length,
    gcMs: Math.round(gcUs) / 1000,
  };
}

async function startSampling(intervalBytes) {
  const session = new Session();
  session.connect();
  await post(session, "HeapProfiler.enable");
  await post(session, "HeapProfiler.startSampling", {
    samplingInterval: intervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  sampling = { session };
}

async function stopSampling(file) {
  const { session } = sampling;
  sampling = undefined;
  const { profile } = await post(session, "HeapProfiler.stopSampling");
  session.disconnect();
  writeFileSync(file, JSON.stringify(profile));
  return {};
}

function post(session, method, params) {
  return new Promise((resolve, reject) =>
    session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
  );
}

async function startProfile() {
  const session = new Session();
  session.connect();
  await post(session, "Profiler.enable");
  await post(session, "Profiler.setSamplingInterval", { interval: 1000 });
  await post(session, "Profiler.start");
  profiling = { session };
}

function markWindow() {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const gc = { count: 0, totalMs: 0, maxMs: 0 };
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.count++;
      gc.totalMs += entry.duration;
      gc.maxMs = Math.max(gc.maxMs, entry.duration);
    }
  });
  observer.observe({ entryTypes: ["gc"] });
  // The profile's timestamps are CLOCK_MONOTONIC µs, as hrtime's.
  Object.assign(profiling, { loop, gc, observer, fromUs: Number(process.hrtime.bigint() / 1000n) });
}

/** Keeps the samples taken at or after `fromUs`. */
function trim(profile, fromUs) {
  let t = profile.startTime;
  const samples = [];
  const deltas = [];
  let last = fromUs;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i];
    if (t < fromUs) return;
    samples.push(id);
    deltas.push(t - last);
    last = t;
  });
  return { ...profile, startTime: fromUs, samples, timeDeltas: deltas };
}

async function stopProfile(file) {
  const { session, loop, gc, observer, fromUs } = profiling;
  profiling = undefined;
  const { profile } = await post(session, "Profiler.stop");
  session.disconnect();
  loop.disable();
  observer.disconnect();
  writeFileSync(file, JSON.stringify(trim(profile, fromUs)));
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  return {
    // An empty histogram (no sample recorded) is left out rather than read as zero delay.
    loop:
      loop.count > 0
        ? { p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), max: ms(loop.max) }
        : undefined,
    gc: {
      count: gc.count,
      totalMs: Math.round(gc.totalMs * 100) / 100,
      maxMs: Math.round(gc.maxMs * 100) / 100,
    },
  };
}

async function answer(message) {
  if (message.probe === "memory") {
    const collect = message.gc === true && typeof globalThis.gc === "function";
    if (collect) {
      globalThis.gc();
      globalThis.gc();
    }
    const m = process.memoryUsage();
    return {
      gc: collect,
      rss: m.rss,
      heapUsed: m.heapUsed,
      heapTotal: m.heapTotal,
      external: m.external,
    };
  }
  if (message.probe === "profile" && message.action === "start" && !profiling) {
    await startProfile();
    return {};
  }
  if (message.probe === "profile" && message.action === "mark" && profiling && !profiling.loop) {
    markWindow();
    return {};
  }
  if (message.probe === "profile" && message.action === "stop" && profiling?.loop) {
    return stopProfile(String(message.file));
  }
  if (message.probe === "alloc" && message.action === "start" && !allocating) {
    startAlloc();
    return {};
  }
  if (message.probe === "alloc" && message.action === "stop" && allocating) return stopAlloc();
  if (message.probe === "heapsample" && message.action === "start" && !sampling) {
    await startSampling(Number(message.intervalBytes) || 32768);
    return {};
  }
  if (message.probe === "heapsample" && message.action === "stop" && sampling) {
    return stopSampling(String(message.file));
  }
  return { error: "bad probe request" };
}

if (typeof process.send === "function") {
  process.on("message", (message) => {
    if (!message || typeof message !== "object" || typeof message.probe !== "string") return;
    answer(message).then(
      (reply) => process.send({ probe: message.probe, id: message.id, ...reply }),
      (err) => process.send({ probe: message.probe, id: message.id, error: String(err) }),
    );
  });
}
