import { execFile } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { sourceCliArgv } from "../support/gateway-process.js";

const run = promisify(execFile);

async function runCli(args: string[], env: Record<string, string>) {
  try {
    const { stdout, stderr } = await run(process.execPath, sourceCliArgv(args), {
      env: { PATH: process.env.PATH ?? "", ...env },
      timeout: 20_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("process start-up", () => {
  it("a bad environment variable stops the gateway with a line naming it", async () => {
    const { code, stderr } = await runCli(["gateway"], { PORT: "eighty", BACKPLANE: "redis" });
    expect(code).toBe(78);
    expect(stderr).toContain(
      "switchboard: invalid environment variable PORT: must be a whole number",
    );
    // One line per bad variable, each naming it.
    expect(stderr.trim().split("\n")).toEqual([
      expect.stringContaining("variable PORT:"),
      expect.stringContaining("variable REDIS_URL: is required when BACKPLANE=redis"),
    ]);
  });

  it("a missing broker URL for the chosen backplane is named", async () => {
    const { code, stderr } = await runCli(["cluster"], { BACKPLANE: "amqp" });
    expect(code).toBe(78);
    expect(stderr).toContain(
      "invalid environment variable AMQP_URL: is required when BACKPLANE=amqp",
    );
  });

  it.each(["gateway", "cluster"])(
    "%s: a port another process holds stops it with one line naming HOST and PORT",
    async (command) => {
      const holder = createServer();
      await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
      try {
        const { port } = holder.address() as AddressInfo;
        const { code, stderr } = await runCli([command], {
          HOST: "127.0.0.1",
          PORT: String(port),
          WORKERS: "1",
        });
        expect(code).toBe(78);
        expect(stderr.trim().split("\n")).toEqual([
          `switchboard: cannot listen on HOST "127.0.0.1" PORT ${port}: the port is in use by another process (EADDRINUSE)`,
        ]);
      } finally {
        holder.close();
      }
    },
  );

  it("an unknown command prints the usage and exits 64", async () => {
    const { code, stderr } = await runCli(["gatewya"], {});
    expect(code).toBe(64);
    expect(stderr).toContain('unknown command "gatewya"');
    expect(stderr).toContain("usage: switchboard");
  });
});
