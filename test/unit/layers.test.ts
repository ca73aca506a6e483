import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

/**
 * Imports run one way: services -> adapters -> core (docs/ARCHITECTURE.md). Adapters are
 * libraries a Socket.IO author imports on their own, so they must know no server; the publisher
 * is a client library, so it must pull in neither the gateway nor the consumers.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

interface Rule {
  from: string;
  to: string;
  why: string;
}

const FORBIDDEN: Rule[] = [
  { from: "core/", to: "adapters/", why: "core is the lowest layer" },
  { from: "core/", to: "services/", why: "core is the lowest layer" },
  { from: "adapters/", to: "services/", why: "adapters know no server" },
  { from: "services/publisher/", to: "services/gateway/", why: "a publisher is not a server" },
  { from: "services/publisher/", to: "services/ingest/", why: "a publisher is not a consumer" },
  {
    from: "services/ingest/",
    to: "services/gateway/",
    why: "consumers are importable without a server; the contract is in core/",
  },
  {
    from: "services/gateway/",
    to: "services/cluster/",
    why: "the cluster runs gateways, not the other way round (shared process glue: services/lifecycle.ts)",
  },
];

const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g;

/** Relative imports of one source text, as repository paths. */
function importsOf(file: string, text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(IMPORT)) {
    const spec = match[1] as string;
    if (!spec.startsWith(".")) continue;
    found.push(relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\\/g, "/"));
  }
  return found;
}

function violations(edges: Array<[from: string, to: string]>): string[] {
  const out: string[] = [];
  for (const [from, to] of edges) {
    for (const rule of FORBIDDEN) {
      if (from.startsWith(rule.from) && to.startsWith(rule.to)) {
        out.push(`${from} imports ${to}: ${rule.why}`);
      }
    }
  }
  return out;
}

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...sources(path));
    else if (/\.(ts|js|mjs)$/.test(entry.name)) out.push(path);
  }
  return out;
}

function edgesOfTree(): Array<[string, string]> {
  const edges: Array<[string, string]> = [];
  for (const file of ["core", "adapters", "services"].flatMap(sources)) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (const target of importsOf(file, text)) edges.push([file, target]);
  }
  return edges;
}

describe("the layers of the tree", () => {
  it("no file under core/ or adapters/ imports services/, and the publisher imports neither the gateway nor the consumers", () => {
    const edges = edgesOfTree();
    // The scan sees the imports it is meant to judge (a broken pattern would pass everything).
    expect(edges).toContainEqual(["adapters/amqp/index.ts", "core/errors.js"]);
    expect(edges).toContainEqual(["services/gateway/main.ts", "adapters/backplane.js"]);
    expect(violations(edges)).toEqual([]);
  });

  it("services/cluster and services/gateway do not import each other both ways", () => {
    const edges = edgesOfTree();
    const between = (a: string, b: string) =>
      edges.some(([from, to]) => from.startsWith(a) && to.startsWith(b));
    expect(between("services/cluster/", "services/gateway/")).toBe(true);
    expect(between("services/gateway/", "services/cluster/")).toBe(false);
  });

  it("reads static, type-only, re-exported and dynamic imports alike", () => {
    const text = [
      'import { a } from "../../services/gateway/config.js";',
      'import type { B } from "../../services/x.js";',
      'export { c } from "../../services/y.js";',
      'const d = await import("../../services/z.js");',
      'import "../../services/side-effect.js";',
      'import { e } from "zod";',
    ].join("\n");
    const found = importsOf("adapters/amqp/some.ts", text);
    expect(found).toEqual([
      "services/gateway/config.js",
      "services/x.js",
      "services/y.js",
      "services/z.js",
      "services/side-effect.js",
    ]);
    expect(violations(found.map((to) => ["adapters/amqp/some.ts", to]))).toHaveLength(5);
    expect(
      violations([
        ["services/publisher/publisher.ts", "services/ingest/redis-consumer.js"],
        ["services/publisher/cli.ts", "services/gateway/config.js"],
        ["core/errors.ts", "adapters/backplane.js"],
      ]),
    ).toHaveLength(3);
  });
});
