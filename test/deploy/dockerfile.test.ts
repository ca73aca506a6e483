import { spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";
import {
  dockerignorePatterns,
  execForm,
  ignoredBy,
  parseCopy,
  parseDockerfile,
  type Stage,
} from "./dockerfile.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DOCKERFILE = join(ROOT, "deploy/Dockerfile");
const dockerfile = parseDockerfile(DOCKERFILE);
const ignore = dockerignorePatterns(join(ROOT, ".dockerignore"));
const runtime = dockerfile.stages.at(-1)!;

const all = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);
const stageNamed = (name: string) => dockerfile.stages.find((s) => s.name === name);

/** Where a path inside the final image comes from: the repository, or another stage's output. */
function runtimeLayout() {
  const workdir = last(runtime, "WORKDIR")?.args ?? "/";
  return all(runtime, "COPY").map((instruction) => {
    const copy = parseCopy(instruction.args);
    return { ...copy, workdir };
  });
}

describe("deploy/Dockerfile, read as docker would", () => {
  it("builds in one stage with dev dependencies and runs from another with production ones only", () => {
    expect(dockerfile.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of dockerfile.stages) expect(stage.image).toMatch(/^node:24(-|$)/);

    const build = dockerfile.stages.find((s) =>
      all(s, "RUN").some((r) => r.args.includes("npm run build")),
    );
    expect(build, "a stage that runs npm run build").toBeDefined();
    const buildInstall = all(build!, "RUN").find((r) => r.args.includes("npm ci"));
    expect(buildInstall?.args).not.toContain("--omit=dev");

    // The final stage installs nothing itself: its node_modules come from a stage whose only
    // install omits the dev dependencies, and its code is the build stage's dist/.
    expect(all(runtime, "RUN")).toEqual([]);
    const copies = runtimeLayout();
    const modules = copies.find((c) => c.destination.replace(/\/$/, "").endsWith("node_modules"));
    expect(modules?.from).toBeDefined();
    const deps = stageNamed(modules!.from!);
    const installs = all(deps!, "RUN").filter((r) => r.args.includes("npm ci"));
    expect(installs.length).toBe(1);
    expect(installs[0]!.args).toContain("--omit=dev");
    const dist = copies.find((c) => c.destination.replace(/\/$/, "").endsWith("dist"));
    expect(dist?.from).toBe(build!.name);
    // No TypeScript sources in the image: only compiled code runs.
    for (const copy of copies.filter((c) => c.from === undefined)) {
      for (const source of copy.sources)
        expect(["services", "adapters", "core"]).not.toContain(source);
    }
  });

  it("runs as a non-root user, stops on SIGTERM and checks /healthz", () => {
    const user = last(runtime, "USER")?.args.trim();
    expect(user).toBeDefined();
    expect(["root", "0", "0:0"]).not.toContain(user);
    const userLine = last(runtime, "USER")!.line;
    expect(last(runtime, "ENTRYPOINT")!.line).toBeGreaterThan(userLine);
    expect(last(runtime, "STOPSIGNAL")?.args.trim()).toBe("SIGTERM");
    const healthcheck = last(runtime, "HEALTHCHECK")?.args ?? "";
    expect(healthcheck).toMatch(/--interval=\d+s/);
    expect(healthcheck).toContain("/healthz");
    expect(last(runtime, "EXPOSE")?.args.trim()).toBe("3000");
  });

  it("copies only paths that exist in the repository and that .dockerignore lets through", () => {
    for (const stage of dockerfile.stages) {
      for (const instruction of all(stage, "COPY")) {
        const copy = parseCopy(instruction.args);
        if (copy.from !== undefined) {
          expect(stageNamed(copy.from), `stage ${copy.from}`).toBeDefined();
          continue;
        }
        for (const source of copy.sources) {
          expect(existsSync(join(ROOT, source)), `${source} (line ${instruction.line})`).toBe(true);
          expect(ignoredBy(ignore, source), `${source} is in .dockerignore`).toBe(false);
        }
      }
    }
  });

  it(".dockerignore keeps node_modules, .git, dist and secrets out of the build context", () => {
    for (const path of ["node_modules", ".git", "dist", ".env", "test/unit", "npm-debug.log"]) {
      expect(ignoredBy(ignore, path), path).toBe(true);
    }
  });

  it("its entry point exists once npm run build has run (npm test builds first)", () => {
    const command = [
      ...execForm(last(runtime, "ENTRYPOINT")!.args),
      ...execForm(last(runtime, "CMD")!.args),
    ];
    expect(command).toEqual(["node", "bin/switchboard.js", "gateway"]);
    expect(existsSync(join(ROOT, command[1]!))).toBe(true);
    // bin/switchboard.js loads the bundled entry from dist/cli/, which the image copies.
    expect(readFileSync(join(ROOT, command[1]!), "utf8")).toContain("../dist/cli/entry.js");
    expect(existsSync(join(ROOT, "dist/cli/entry.js"))).toBe(true);
  });

  it("its final stage runs without Docker: production dependencies, dist/ and bin/ serve a gateway that passes the HEALTHCHECK and stops on SIGTERM", {
    timeout: 180_000,
  }, async () => {
    // Lay out /app as the final stage does: the deps stage's `npm ci --omit=dev` (from npm's
    // cache when it holds the packages), then the COPY lines.
    const app = mkdtempSync(join(tmpdir(), "switchboard-image-"));
    onTestFinished(() => rmSync(app, { recursive: true, force: true }));
    cpSync(join(ROOT, "package.json"), join(app, "package.json"));
    cpSync(join(ROOT, "package-lock.json"), join(app, "package-lock.json"));
    const install = all(stageNamed("deps")!, "RUN")
      .find((r) => r.args.includes("npm ci"))!
      .args.split("&&")[0]!
      .trim()
      .split(/\s+/);
    const npm = spawnSync(install[0]!, [...install.slice(1), "--prefer-offline"], {
      cwd: app,
      encoding: "utf8",
      timeout: 150_000,
    });
    expect(npm.status, npm.stderr).toBe(0);
    const buildWorkdir = last(stageNamed("build")!, "WORKDIR")!.args.trim();
    for (const copy of runtimeLayout()) {
      if (copy.from !== undefined && copy.destination.includes("node_modules")) continue;
      for (const source of copy.sources) {
        // The build stage's WORKDIR is the repository's root here (npm test has built dist/).
        const from = copy.from === undefined ? source : relative(buildWorkdir, source);
        const to = copy.destination.endsWith("/")
          ? join(app, copy.destination, basename(from))
          : join(app, copy.destination);
        cpSync(join(ROOT, from), to, { recursive: true });
      }
    }
    for (const dev of ["tsx", "typescript", "vitest", "@biomejs/biome"]) {
      expect(existsSync(join(app, "node_modules", dev)), `${dev} in the image`).toBe(false);
    }

    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin" };
    for (const instruction of all(runtime, "ENV")) {
      const [key, value] = instruction.args.split("=");
      env[key!.trim()] = value!.trim();
    }
    const port = await freePort();
    // On the Redis backplane with both publish paths, so the broker clients load from the
    // production node_modules too.
    Object.assign(env, {
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      BACKPLANE: "redis",
      REDIS_URL: await redisUrl(),
      AMQP_URL: await amqpUrl(),
      INGEST: "off",
    });
    const [bin, ...args] = [
      ...execForm(last(runtime, "ENTRYPOINT")!.args),
      ...execForm(last(runtime, "CMD")!.args),
    ];
    const child = spawn(bin!, args, { cwd: app, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      output += c.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    onTestFinished(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });

    const healthcheck = execForm(
      last(runtime, "HEALTHCHECK")!
        .args.replace(/^(--\S+\s+)*CMD\s+/, "")
        .trim(),
    );
    const check = () =>
      spawnSync(healthcheck[0]!, healthcheck.slice(1), { cwd: app, env, timeout: 10_000 }).status;
    await waitFor(() => child.exitCode === null && check() === 0, {
      timeoutMs: 30_000,
      intervalMs: 200,
      message: `the image's HEALTHCHECK passing\n${output}`,
    });

    const stopsignal = last(runtime, "STOPSIGNAL")!.args.trim() as NodeJS.Signals;
    child.kill(stopsignal);
    expect(await exited).toBe(0);
    expect(check()).not.toBe(0); // and the check does fail when nothing answers
  });
});

/** Whether a Docker engine answers here; if not, the docker CLI's own words say why. */
function probeEngine(): { reachable: boolean; reason: string } {
  const probe = spawnSync("docker", ["version", "--format", "{{.Server.Version}}"], {
    encoding: "utf8",
    timeout: 15_000,
  });
  if (probe.error) return { reachable: false, reason: `no docker CLI (${probe.error.message})` };
  if (probe.status === 0) return { reachable: true, reason: `engine ${probe.stdout.trim()}` };
  const words = probe.stderr.trim().split("\n")[0] ?? `docker exited ${probe.status}`;
  return { reachable: false, reason: words };
}

const engine = probeEngine();

describe("the image with a Docker engine", () => {
  it(engine.reachable
    ? "docker builds deploy/Dockerfile and one gateway from it answers /healthz as a non-root user"
    : `docker build and run of deploy/Dockerfile did not run: no Docker engine is reachable (${engine.reason}); the checks above ran instead`, {
    timeout: 900_000,
  }, async () => {
    if (!engine.reachable) {
      // Say why, loudly, and prove the probe saw a missing engine rather than a broken CLI call.
      console.warn(`[deploy] image not built: no Docker engine reachable: ${engine.reason}`);
      expect(engine.reason).toMatch(/docker daemon|connect|no docker CLI|socket|engine/i);
      return;
    }
    const tag = `switchboard-test:${process.pid}`;
    const build = spawnSync("docker", ["build", "-f", DOCKERFILE, "-t", tag, ROOT], {
      encoding: "utf8",
      timeout: 840_000,
    });
    expect(build.status, build.stderr).toBe(0);
    onTestFinished(() => {
      spawnSync("docker", ["rmi", "-f", tag]);
    });
    const port = await freePort();
    const run = spawnSync("docker", ["run", "-d", "--rm", "-p", `127.0.0.1:${port}:3000`, tag], {
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    const id = run.stdout.trim();
    onTestFinished(() => {
      spawnSync("docker", ["stop", "-t", "15", id]);
    });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200, {
      timeoutMs: 60_000,
      message: "the container's /healthz",
    });
    const user = spawnSync("docker", ["exec", id, "id", "-u"], { encoding: "utf8" });
    expect(user.stdout.trim()).not.toBe("0");
  });
});
