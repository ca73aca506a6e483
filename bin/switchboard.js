#!/usr/bin/env node
// Production entry point: runs the compiled JavaScript bundled in dist/cli/ (built by `npm run
// build`, and by `npm ci`/`npm install` through the prepare script: tsc, then bundle.mjs).
// Development and tests run the TypeScript sources instead:
// `node --import tsx services/entry.ts <command>`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const entry = new URL("../dist/cli/entry.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write(
    "switchboard: dist/cli/entry.js is missing: run `npm run build` (or `npm ci`) first\n",
  );
  process.exit(70); // EX_SOFTWARE
}
await import(entry.href);
