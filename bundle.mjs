// The second step of `npm run build`, after tsc: the `switchboard` command's code, bundled from
// tsc's output (dist/services/entry.js and what it imports) into dist/cli/, which
// bin/switchboard.js runs. Why: a gateway then loads a few files instead of ~50 of ours and ~95
// of zod's, and only the part of zod it uses (zod marks its modules free of side effects, so
// esbuild drops the unused schemas, the JSON Schema code and ~50 locales): the base memory of an
// idle gateway (issue 12, P6; docs/BENCHMARKS.md, "What each change bought").
//
// - Every other package stays external, loaded from node_modules as before: most are CommonJS
//   (a bundled copy of socket.io would not be the one services/gateway/fast-delivery.ts patches).
//   The library entry points (`switchboard/adapters/*`, `switchboard/publisher`) are still tsc's
//   modules in dist/, unbundled.
// - A file that a module finds beside itself (`new URL("./x.js", import.meta.url)`) must be an
//   entry point here too: the bundle's modules all live in dist/cli/.
// - Dynamic imports stay dynamic (`splitting`): the Redis, RabbitMQ, cluster, ingest and bridge
//   code are chunks loaded only when configured, as before.
// - No `keepNames` (it wraps every function, zod's too, at load: ≈ 0.3 MB more heap). esbuild may
//   rename a class to avoid a clash; the build fails if that happens to one of our error classes,
//   whose name logs show as `err.type`.
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { build } from "esbuild";

const OUT = "dist/cli";
const inlined = (path) => path === "zod" || path.startsWith("zod/");

// Chunk names carry a hash: without this, every build would leave the previous ones behind.
rmSync(OUT, { recursive: true, force: true });

await build({
  entryPoints: {
    entry: "dist/services/entry.js",
    // `switchboard loadtest` forks this file, found beside its own module (loadtest/coordinator.ts).
    "worker-main": "dist/services/loadtest/worker-main.js",
  },
  outdir: OUT,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  sourcemap: true,
  logLevel: "warning",
  plugins: [
    {
      name: "packages-external-but-zod",
      setup(pluginBuild) {
        // Bare specifiers (packages and node: builtins); relative paths are ours.
        pluginBuild.onResolve({ filter: /^[^./]/ }, (args) =>
          inlined(args.path) ? undefined : { path: args.path, external: true },
        );
      },
    },
  ],
});

const js = (dir) =>
  readdirSync(dir, { recursive: true })
    .filter((file) => file.endsWith(".js"))
    .map((file) => readFileSync(join(dir, file), "utf8"));
const errorClasses = new Set();
for (const dir of ["dist/core", "dist/adapters", "dist/services"])
  for (const text of js(dir))
    for (const [, name] of text.matchAll(/\bclass (\w+) extends \w*Error\b/g))
      errorClasses.add(name);
const renamed = new Set();
const clash = /\b(?:var (\w+?)\d+ = class|class (\w+?)\d+|class _(\w+))\b/g;
for (const text of js(OUT))
  for (const [, a, b, c] of text.matchAll(clash))
    if (errorClasses.has(a ?? b ?? c)) renamed.add(a ?? b ?? c);
if (renamed.size > 0) {
  console.error(`bundle.mjs: esbuild renamed error classes: ${[...renamed].join(", ")}`);
  process.exit(1);
}
