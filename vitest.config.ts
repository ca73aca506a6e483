import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start real processes and brokers: keep concurrency modest on 2 cores.
    maxWorkers: 2,
    fileParallelism: true,
    reporters: ["default", "json"],
    // .ci/run prints a one-line summary from this file.
    outputFile: { json: ".vitest/results.json" },
  },
});
