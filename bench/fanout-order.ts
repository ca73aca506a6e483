import { fork } from "node:child_process";
import type { Socket } from "socket.io-client";
import { connectClient, request } from "../test/support/clients.js";
import { freePort } from "../test/support/ports.js";
import { startPrivateRedis } from "../test/support/redis-server.js";
import {
  altCliFromEnv,
  envNumber,
  gatewayEnv,
  here,
  pin,
  runMain,
  type ServerProcess,
  startServer,
} from "./procs.js";
import { now, summarize } from "./stats.js";

/**
 * A big room on one gateway and a few of its members on another (`BACKPLANE=redis`): how long a
 * broadcast takes to reach the other gateway's members while the publishing gateway writes to
 * its own. Builds are run interleaved, pinned as `npm run bench` pins them (servers and the
 * private Redis on core 0, clients on core 1):
 *
 *   npm run build && node --import tsx bench/fanout-order.ts
 *   BENCH_ALT_CLI=/other/checkout/bin/switchboard.js node --import tsx bench/fanout-order.ts
 *
 * `BENCH_LOCAL_MEMBERS` (400) members on gateway A, 5 on gateway B, one publisher on A sending
 * `BENCH_PUBLISHES` (300) publishes at 20/s, `BENCH_REPEATS` (3). The local members live in a
 * child process of their own so that receiving them does not delay the timing of B's members.
 */

const LOCAL_MEMBERS = envNumber("BENCH_LOCAL_MEMBERS", 400);
const PUBLISHES = envNumber("BENCH_PUBLISHES", 300);
const REPEATS = envNumber("BENCH_REPEATS", 3);
const ALT_CLI = altCliFromEnv();
const REMOTE_MEMBERS = 5;
const ROOM = "fanout";
const builds = [
  { name: "this build", cli: here("../bin/switchboard.js") },
  ...(ALT_CLI !== undefined ? [{ name: "alt", cli: ALT_CLI }] : []),
];

/** The child holding the local members: reports their latencies when asked, then exits. */
function startLocalMembers(url: string): Promise<{ report(): Promise<number[]> }> {
  const child = fork(here("./fanout-members.ts"), [url, String(LOCAL_MEMBERS), ROOM], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  pin(child.pid ?? -1, "1");
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("local members: not ready in 120 s")), 120_000);
    child.once("exit", (code) => reject(new Error(`local members exited (${code})`)));
    child.once("message", () => {
      clearTimeout(timer);
      resolve({
        report: () =>
          new Promise((done) => {
            child.once("message", (latencies) => done(latencies as number[]));
            child.send("report");
          }),
      });
    });
  });
}

async function run(cli: string, redisUrl: string) {
  const gateways: ServerProcess[] = [];
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      gateways.push(
        await startServer({
          name: `gateway-${i}`,
          script: cli,
          args: ["gateway"],
          readyPath: "/readyz",
          port,
          cpus: "0",
          env: gatewayEnv(port, `fanout-${i}`, { BACKPLANE: "redis", REDIS_URL: redisUrl }),
        }),
      );
    }
    const [a, b] = gateways.map((g) => g.url) as [string, string];
    const local = await startLocalMembers(a);
    const remote: number[] = [];
    for (let i = 0; i < REMOTE_MEMBERS; i++) {
      const socket = await connectClient(b);
      sockets.push(socket);
      await request(socket, "join", ROOM);
      socket.on("m", (d: { t: number }) => remote.push(now() - d.t));
    }
    const publisher = await connectClient(a);
    sockets.push(publisher);
    const pad = "x".repeat(60);
    for (let i = 0; i < PUBLISHES; i++) {
      publisher.emit("publish", { room: ROOM, event: "m", data: { t: now(), x: pad } }, () => {});
      await new Promise((r) => setTimeout(r, 50));
    }
    const deadline = Date.now() + 5000;
    while (remote.length < PUBLISHES * REMOTE_MEMBERS && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    const locals = await local.report();
    return {
      remote: summarize(remote),
      remoteN: remote.length,
      local: summarize(locals),
      localN: locals.length,
    };
  } finally {
    for (const s of sockets) s.disconnect();
    await Promise.all(gateways.map((g) => g.stop()));
  }
}

async function main() {
  pin(process.pid, "1");
  const redis = await startPrivateRedis();
  pin(redis.pid ?? -1, "0");
  try {
    console.log(
      `fan-out order: ${LOCAL_MEMBERS} members on gateway A, ${REMOTE_MEMBERS} on B, ${PUBLISHES} publishes at 20/s from A, ${REPEATS} repeats`,
    );
    for (let r = 1; r <= REPEATS; r++) {
      for (const build of builds) {
        const x = await run(build.cli, redis.url);
        console.log(
          `${build.name.padEnd(10)} r${r}  B (cross-gateway) p50 ${x.remote.p50} p99 ${x.remote.p99} ms (n=${x.remoteN}/${PUBLISHES * REMOTE_MEMBERS})` +
            `  A (local) p50 ${x.local.p50} p99 ${x.local.p99} ms (n=${x.localN}/${PUBLISHES * LOCAL_MEMBERS})`,
        );
      }
    }
  } finally {
    await redis.stop();
  }
}

runMain(main);
