/**
 * What one idle connection keeps on a server's heap, by constructor: starts a server, takes a heap
 * snapshot, connects N idle Socket.IO clients (WebSocket transport, no room, as the bench's idle
 * cell), takes a second snapshot, and prints the objects that are new in the second one (V8's
 * object ids are stable within a process), grouped by type and constructor, per connection, with
 * each group's most common retainer (`Owner.edge`); then the same objects by per-connection owner
 * (net.Socket, ws, engine.io, Socket.IO).
 *
 *   node --import tsx bench/heap-diff.ts <sb|stock> [connections=2000] [--keep <dir>]
 *   node --import tsx bench/heap-diff.ts --files <before.heapsnapshot> <after.heapsnapshot> <N>
 *
 * `sb` runs the built gateway (bin/switchboard.js, dist/) with BACKPLANE=memory; `stock` runs
 * bench/servers/stock-sio.mjs. Snapshots come from --heapsnapshot-signal (a full GC precedes each).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { io, type Socket } from "socket.io-client";
import { freePort } from "../test/support/ports.js";

const WARMUP = 200;
const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[]];
      edge_fields: string[];
      edge_types: [string[]];
      location_fields?: string[];
    };
  };
  nodes: number[];
  edges: number[];
  locations?: number[];
  strings: string[];
}

interface Group {
  count: number;
  bytes: number;
  retainers: Map<string, number>;
  samples: string[];
}

/** A snapshot's field offsets, the ids of `before`, and where each node's edges start. */
function readSnapshots(before: Snapshot, after: Snapshot) {
  const meta = after.snapshot.meta;
  const nf = meta.node_fields.length;
  const ef = meta.edge_fields.length;
  const field = (name: string) => meta.node_fields.indexOf(name);
  const edgeField = (name: string) => meta.edge_fields.indexOf(name);
  const { nodes, edges, strings } = after;
  const count = nodes.length / nf;
  const edgeCountIdx = field("edge_count");
  const seen = new Set<number>();
  const bf = before.snapshot.meta.node_fields;
  const beforeIdIdx = bf.indexOf("id");
  for (let i = 0; i < before.nodes.length; i += bf.length) seen.add(before.nodes[i + beforeIdIdx]!);
  const firstEdge = new Uint32Array(count + 1);
  for (let n = 0; n < count; n++) {
    firstEdge[n + 1] = firstEdge[n]! + nodes[n * nf + edgeCountIdx]! * ef;
  }
  return {
    nf,
    ef,
    typeIdx: field("type"),
    nameIdx: field("name"),
    idIdx: field("id"),
    sizeIdx: field("self_size"),
    edgeCountIdx,
    edgeTypeIdx: edgeField("type"),
    edgeNameIdx: edgeField("name_or_index"),
    edgeToIdx: edgeField("to_node"),
    nodeTypes: meta.node_types[0],
    edgeTypes: meta.edge_types[0],
    nodes,
    edges,
    strings,
    count,
    seen,
    firstEdge,
  };
}

/** Objects of `after` whose id is not in `before`, grouped by `type name`. */
export function diffSnapshots(before: Snapshot, after: Snapshot): Map<string, Group> {
  const {
    nf,
    ef,
    typeIdx,
    nameIdx,
    idIdx,
    sizeIdx,
    edgeCountIdx,
    edgeTypeIdx,
    edgeNameIdx,
    edgeToIdx,
    nodeTypes,
    edgeTypes,
    nodes,
    edges,
    strings,
    count,
    seen,
    firstEdge,
  } = readSnapshots(before, after);

  const keyOf = (n: number): string => {
    const type = nodeTypes[nodes[n * nf + typeIdx]!]!;
    const name = strings[nodes[n * nf + nameIdx]!]!;
    if (type === "string" || type === "concatenated string" || type === "sliced string") {
      return `(${type})`;
    }
    if (type === "number" || type === "code") return `(${type})`;
    if (type === "object" || type === "closure" || type === "native" || type === "hidden") {
      return `${type} ${name.length > 60 ? `${name.slice(0, 60)}…` : name}`;
    }
    return `${type} ${name.slice(0, 40)}`;
  };
  const shortName = (n: number) => {
    const type = nodeTypes[nodes[n * nf + typeIdx]!]!;
    const name = strings[nodes[n * nf + nameIdx]!]!;
    if (type === "string") return "(string)";
    return name.length > 40 ? `${name.slice(0, 40)}…` : name;
  };

  // Closures are told apart by where their function is (script:line:col).
  const edgeTo = (n: number, name: string): number | undefined => {
    for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) {
      const etype = edgeTypes[edges[e + edgeTypeIdx]!]!;
      if (etype === "element" || etype === "hidden") continue;
      if (strings[edges[e + edgeNameIdx]!] === name) return edges[e + edgeToIdx]! / nf;
    }
    return undefined;
  };
  const scriptNames = new Map<number, string>();
  const located = new Map<number, string>();
  const loc = after.locations ?? [];
  const lf = after.snapshot.meta.location_fields?.length ?? 4;
  for (let i = 0; i < loc.length; i += lf) {
    const n = loc[i]! / nf;
    const scriptId = loc[i + 1]!;
    if (!scriptNames.has(scriptId)) {
      const sfi = edgeTo(n, "shared");
      const script = sfi === undefined ? undefined : edgeTo(sfi, "script_or_debug_info");
      const text =
        script === undefined ? `script#${scriptId}` : strings[nodes[script * nf + nameIdx]!]!;
      scriptNames.set(
        scriptId,
        text.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*\/dist\//, "dist/"),
      );
    }
    located.set(n, `${scriptNames.get(scriptId)}:${loc[i + 2]! + 1}:${loc[i + 3]! + 1}`);
  }

  const fresh = new Uint8Array(count);
  const groups = new Map<string, Group>();
  for (let n = 0; n < count; n++) {
    if (seen.has(nodes[n * nf + idIdx]!)) continue;
    fresh[n] = 1;
    const where = located.get(n);
    const key =
      where && nodeTypes[nodes[n * nf + typeIdx]!] === "closure"
        ? `${keyOf(n)} @${where}`
        : keyOf(n);
    let g = groups.get(key);
    if (!g) {
      g = { count: 0, bytes: 0, retainers: new Map(), samples: [] };
      groups.set(key, g);
    }
    g.count++;
    g.bytes += nodes[n * nf + sizeIdx]!;
    if (g.samples.length < 12 && key.startsWith("(")) {
      const name = strings[nodes[n * nf + nameIdx]!]!;
      g.samples.push(name.slice(0, 50));
    }
  }
  // Retainers: for every fresh node, the (parent, edge) pairs pointing at it; weak edges skipped.
  let edgeIndex = 0;
  for (let n = 0; n < count; n++) {
    const edgeCount = nodes[n * nf + edgeCountIdx]!;
    for (let e = 0; e < edgeCount; e++, edgeIndex += ef) {
      const to = edges[edgeIndex + edgeToIdx]! / nf;
      if (!fresh[to]) continue;
      const etype = edgeTypes[edges[edgeIndex + edgeTypeIdx]!]!;
      if (etype === "weak" || etype === "shortcut") continue;
      const nameOrIndex = edges[edgeIndex + edgeNameIdx]!;
      const edgeName =
        etype === "element" || etype === "hidden" ? `[${etype}]` : String(strings[nameOrIndex]);
      const label = `${shortName(n)}.${edgeName}`;
      const where = located.get(to);
      const toKey =
        where && nodeTypes[nodes[to * nf + typeIdx]!] === "closure"
          ? `${keyOf(to)} @${where}`
          : keyOf(to);
      const g = groups.get(toKey)!;
      g.retainers.set(label, (g.retainers.get(label) ?? 0) + 1);
    }
  }
  return groups;
}

export function report(groups: Map<string, Group>, connections: number, top = 60): string {
  const rows = [...groups.entries()].sort((a, b) => b[1].bytes - a[1].bytes);
  let total = 0;
  let totalCount = 0;
  for (const [, g] of rows) {
    total += g.bytes;
    totalCount += g.count;
  }
  const lines = [
    `new objects: ${totalCount} (${(totalCount / connections).toFixed(1)}/conn), self size ${(total / connections).toFixed(0)} B/conn over ${connections} connections`,
    "B/conn  count/conn  group  — top retainers",
  ];
  for (const [key, g] of rows.slice(0, top)) {
    const retainers = [...g.retainers.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([label, c]) => `${label}×${(c / connections).toFixed(1)}`)
      .join(", ");
    const samples = g.samples.length > 0 ? ` e.g. ${JSON.stringify(g.samples.slice(0, 6))}` : "";
    lines.push(
      `${(g.bytes / connections).toFixed(0).padStart(6)}  ${(g.count / connections).toFixed(2).padStart(8)}  ${key} — ${retainers}${samples}`,
    );
  }
  return lines.join("\n");
}

/**
 * The same new objects by owner: each is given to the first per-connection object that reaches
 * it, taking owners from the innermost (the TCP socket) outwards, and not walking through another
 * owner. Owners are told by constructor and a property only they have.
 */
export function owners(before: Snapshot, after: Snapshot, connections: number): string {
  const {
    nf,
    ef,
    typeIdx,
    nameIdx,
    idIdx,
    sizeIdx,
    edgeTypeIdx,
    edgeNameIdx,
    edgeToIdx,
    nodeTypes,
    edgeTypes,
    nodes,
    edges,
    strings,
    count,
    seen,
    firstEdge,
  } = readSnapshots(before, after);
  const fresh = (n: number) => !seen.has(nodes[n * nf + idIdx]!);
  const type = (n: number) => nodeTypes[nodes[n * nf + typeIdx]!]!;
  const name = (n: number) => strings[nodes[n * nf + nameIdx]!]!;
  const has = (n: number, property: string) => {
    for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) {
      const t = edgeTypes[edges[e + edgeTypeIdx]!];
      if ((t === "property" || t === "internal") && strings[edges[e + edgeNameIdx]!] === property) {
        return true;
      }
    }
    return false;
  };
  const ORDER = [
    "net.Socket",
    "ws WebSocket",
    "engine.io WebSocket transport",
    "engine.io Socket",
    "socket.io Client",
    "socket.io Socket",
  ] as const;
  const ownerOf = (n: number): (typeof ORDER)[number] | undefined => {
    if (type(n) !== "object") return undefined;
    switch (name(n)) {
      case "Socket":
        if (has(n, "_readableState")) return "net.Socket";
        if (has(n, "nsp")) return "socket.io Socket";
        if (has(n, "transport") && has(n, "pingIntervalTimer")) return "engine.io Socket";
        return undefined;
      case "WebSocket":
        return has(n, "_receiver") ? "ws WebSocket" : "engine.io WebSocket transport";
      case "Client":
        return has(n, "decoder") ? "socket.io Client" : undefined;
      default:
        return undefined;
    }
  };
  const roots = new Map<string, number[]>(ORDER.map((o) => [o, []]));
  const isRoot = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    if (!fresh(n)) continue;
    const owner = ownerOf(n);
    if (owner === undefined) continue;
    roots.get(owner)!.push(n);
    isRoot[n] = 1;
  }
  const assigned = new Int8Array(count).fill(-1);
  ORDER.forEach((owner, index) => {
    const stack = [...roots.get(owner)!];
    for (const r of stack) assigned[r] = index;
    while (stack.length > 0) {
      const n = stack.pop()!;
      for (let e = firstEdge[n]!; e < firstEdge[n + 1]!; e += ef) {
        const t = edgeTypes[edges[e + edgeTypeIdx]!];
        if (t === "weak" || t === "shortcut") continue;
        const to = edges[e + edgeToIdx]! / nf;
        if (assigned[to] !== -1 || isRoot[to] || !fresh(to)) continue;
        assigned[to] = index;
        stack.push(to);
      }
    }
  });
  const OTHER = "other (adapter Sets, Map/WeakMap tables, code, timer lists)";
  const totals = new Map<string, { bytes: number; count: number; parts: Map<string, number> }>();
  for (let n = 0; n < count; n++) {
    if (!fresh(n)) continue;
    const owner = assigned[n] === -1 ? OTHER : ORDER[assigned[n]!]!;
    let t = totals.get(owner);
    if (!t) {
      t = { bytes: 0, count: 0, parts: new Map() };
      totals.set(owner, t);
    }
    const size = nodes[n * nf + sizeIdx]!;
    t.bytes += size;
    t.count++;
    const k = type(n);
    const part = ["string", "code", "number"].includes(k)
      ? `(${k})`
      : `${k} ${name(n).slice(0, 30)}`;
    t.parts.set(part, (t.parts.get(part) ?? 0) + size);
  }
  const lines = ["B/conn  objects/conn  owner — biggest parts (B/conn)"];
  for (const [owner, t] of [...totals].sort((a, b) => b[1].bytes - a[1].bytes)) {
    const parts = [...t.parts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .map(([part, bytes]) => `${part} ${(bytes / connections).toFixed(0)}`)
      .join(", ");
    lines.push(
      `${(t.bytes / connections).toFixed(0).padStart(6)}  ${(t.count / connections).toFixed(1).padStart(6)}  ${owner} — ${parts}`,
    );
  }
  return lines.join("\n");
}

const load = (file: string) => JSON.parse(readFileSync(file, "utf8")) as Snapshot;

async function ready(url: string, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`${url} not ready`);
}

/** Sends SIGUSR2 and waits until a new snapshot file exists and the server answers again. */
async function snapshot(child: ChildProcess, dir: string, url: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  child.kill("SIGUSR2");
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error("no heap snapshot");
    const file = readdirSync(dir).find((f) => f.endsWith(".heapsnapshot") && !before.has(f));
    if (file) {
      await ready(url, deadline);
      // The snapshot is written synchronously on the main thread: once the server answers, it is complete.
      let size = -1;
      while (size !== statSync(join(dir, file)).size) {
        size = statSync(join(dir, file)).size;
        await sleep(200);
      }
      return join(dir, file);
    }
    await sleep(100);
  }
}

async function connectAll(url: string, n: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  let next = 0;
  const one = async () => {
    while (next < n) {
      next++;
      const socket = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", () => resolve());
        socket.once("connect_error", reject);
      });
      sockets.push(socket);
    }
  };
  await Promise.all(Array.from({ length: 50 }, one));
  return sockets;
}

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === "--files") {
    const n = Number(args[3]);
    const [before, after] = [load(args[1]!), load(args[2]!)];
    console.log(report(diffSnapshots(before, after), n));
    console.log(owners(before, after, n));
    return;
  }
  const kind = args[0];
  if (kind !== "sb" && kind !== "stock") throw new Error("usage: heap-diff.ts <sb|stock> [n]");
  const n = Number(args[1] ?? 2000);
  const keepIdx = args.indexOf("--keep");
  const dir = keepIdx >= 0 ? args[keepIdx + 1]! : mkdtempSync(join(tmpdir(), "heap-diff-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child =
    kind === "sb"
      ? spawn(
          process.execPath,
          ["--heapsnapshot-signal=SIGUSR2", here("../bin/switchboard.js"), "gateway"],
          {
            cwd: dir,
            stdio: ["ignore", "inherit", "inherit"],
            env: {
              ...process.env,
              PORT: String(port),
              HOST: "127.0.0.1",
              BACKPLANE: "memory",
              LOG_LEVEL: "warn",
              INGEST: "off",
              GATEWAY_ID: "heap-diff",
            },
          },
        )
      : spawn(
          process.execPath,
          ["--heapsnapshot-signal=SIGUSR2", here("./servers/stock-sio.mjs"), String(port)],
          { cwd: dir, stdio: ["ignore", "inherit", "inherit"] },
        );
  const readyUrl = kind === "sb" ? `${url}/readyz` : `${url}/socket.io/?EIO=4&transport=polling`;
  let sockets: Socket[] = [];
  try {
    await ready(readyUrl, Date.now() + 30_000);
    // Warm-up connections stay open: code compiled and caches filled by the first connections
    // are in the first snapshot, not counted per connection.
    sockets = await connectAll(url, WARMUP);
    await sleep(500);
    const first = await snapshot(child, dir, readyUrl);
    sockets.push(...(await connectAll(url, n)));
    await sleep(1000);
    const second = await snapshot(child, dir, readyUrl);
    console.log(`${kind}: ${n} connections after ${WARMUP} (warm-up); snapshots in ${dir}`);
    const [before, after] = [load(first), load(second)];
    console.log(report(diffSnapshots(before, after), n));
    console.log(owners(before, after, n));
  } finally {
    for (const s of sockets) s.disconnect();
    child.kill("SIGTERM");
    if (keepIdx < 0) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
