import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  clientsOnEveryWorker,
  closeAllClients,
  collect,
  connectClient,
  request,
  whoami,
} from "../support/clients.js";
import { type GatewayProcess, startGateway } from "../support/gateway-process.js";
import { waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The production entry point as it is installed: bin/switchboard.js and the compiled dist/, with
 * only the production dependencies resolvable (no TypeScript sources, no tsx). `npm test` builds
 * dist/ before vitest runs; on its own, run `npm run build` first.
 */
function installBuiltCopy(): string {
  const dist = join(ROOT, "dist/cli/entry.js");
  if (!existsSync(dist)) throw new Error("dist/ is not built: run `npm run build` first");
  const dir = mkdtempSync(join(tmpdir(), "switchboard-built-"));
  cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
  cpSync(join(ROOT, "dist"), join(dir, "dist"), { recursive: true });
  cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
    dependencies: Record<string, string>;
  };
  // Each production dependency is linked; Node resolves a link to its real path, so their own
  // dependencies resolve in the checkout while this copy sees only what package.json declares.
  for (const name of Object.keys(pkg.dependencies)) {
    const link = join(dir, "node_modules", name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(ROOT, "node_modules", name), link, "dir");
  }
  return dir;
}

describe("the built entry point (bin/switchboard.js runs dist/)", () => {
  let dir: string;
  const started: GatewayProcess[] = [];

  beforeAll(() => {
    dir = installBuiltCopy();
  });
  afterEach(() => closeAllClients());
  afterAll(async () => {
    await Promise.all(started.map((g) => g.stop()));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("declares no runtime dependency on tsx", () => {
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies)).not.toContain("tsx");
    expect(existsSync(join(dir, "node_modules/tsx"))).toBe(false);
  });

  it("`switchboard gateway` serves clients", async () => {
    const gateway = await startGateway({
      builtCli: join(dir, "bin/switchboard.js"),
      env: { BACKPLANE: "memory", GATEWAY_ID: "built-gateway" },
    });
    started.push(gateway);
    const a = await connectClient(gateway.url);
    const b = await connectClient(gateway.url);
    expect((await whoami(a)).gateway).toBe("built-gateway");
    expect(await request(b, "join", "built:room")).toEqual({ ok: true });
    const got = collect(b, "note");
    expect(await request(a, "publish", { room: "built:room", event: "note", data: 1 })).toEqual({
      ok: true,
    });
    await waitFor(() => got.length === 1, { message: "the built gateway delivers" });
    expect(gateway.output()).not.toContain("tsx");
    await gateway.stop();
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
  });

  // The built command is a bundle (bundle.mjs) with zod inside: both zod schemas work in it.
  it("a bad setting stops the built gateway at start with a line naming the variable", async () => {
    const gateway = await startGateway({
      builtCli: join(dir, "bin/switchboard.js"),
      env: { BACKPLANE: "memory", GATEWAY_ID: "not valid!", LOG_LEVEL: "loud" },
      waitFor: "nothing",
    });
    started.push(gateway);
    expect((await gateway.exited).code).toBe(78);
    expect(gateway.output().trim().split("\n")).toEqual([
      'switchboard: invalid environment variable GATEWAY_ID: must be 1-100 chars of [A-Za-z0-9:_.@/-] (got "not valid!")',
      'switchboard: invalid environment variable LOG_LEVEL: must be one of fatal, error, warn, info, debug, trace, silent (got "loud")',
    ]);
  });

  it("the built gateway checks a command posted to POST /v1/publish, naming the bad field", async () => {
    const gateway = await startGateway({
      builtCli: join(dir, "bin/switchboard.js"),
      env: { BACKPLANE: "memory", PUBLISH_API_KEYS: "built-key-0123456789" },
    });
    started.push(gateway);
    const res = await fetch(`${gateway.url}/v1/publish`, {
      method: "POST",
      headers: { authorization: "Bearer built-key-0123456789", "content-type": "application/json" },
      body: JSON.stringify({ v: 1, rooms: ["bad room"], event: "note" }),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: "invalid_command",
      reason: "rooms[0]: must be 1-200 chars of [A-Za-z0-9:_.@/-]",
    });
  });

  it("`switchboard cluster` forks workers that run the built code too", async () => {
    const cluster = await startGateway({
      mode: "cluster",
      builtCli: join(dir, "bin/switchboard.js"),
      env: { BACKPLANE: "memory", WORKERS: "2", GATEWAY_ID: "built-cluster" },
    });
    started.push(cluster);
    const byWorker = await clientsOnEveryWorker(cluster.url, 2);
    expect([...byWorker.keys()].sort()).toEqual(["built-cluster-w0", "built-cluster-w1"]);
    expect((await fetch(`${cluster.url}/readyz`)).status).toBe(200);
  });
});
