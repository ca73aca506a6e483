import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { io, type Socket } from "socket.io-client";
import { freePort } from "../test/support/ports.js";
import { startPrivateRedis } from "../test/support/redis-server.js";
import { gatewayEnv, here, runMain } from "./procs.js";

/**
 * Instructions per publish of one server process, counted by valgrind's callgrind: repeatable
 * on a busy machine, where CPU time and latency are not. For each target, one server on a
 * private Redis (`BACKPLANE=redis`, or stock Socket.IO with @socket.io/redis-adapter), 5
 * members of one room and one publisher sending closed-loop (each publish waits for its ack),
 * run twice, with `from` and with `to` publishes; the difference over `to − from` is the cost of
 * one publish and its 5 deliveries without the start-up (JIT warm-up lasts well into the first
 * thousand publishes under valgrind: keep `from` ≥ 2000). Slow: ~20 publishes/s per run.
 *
 *   node --import tsx bench/instructions.ts [from=2000] [to=5000] [sio|sb|path/to/bin/switchboard.js ...]
 */

interface Run {
  target: string;
  publishes: number;
  instructions: number;
  /** Collections in the run (node's --trace-gc): a mark-compact more in one run moves the marginal. */
  scavenges: number;
  markCompacts: number;
}

const args = process.argv.slice(2);
const numbers = args.filter((a) => /^\d+$/.test(a)).map(Number);
const FROM = numbers[0] ?? 2000;
const TO = numbers[1] ?? 5000;
const TARGETS = args.filter((a) => !/^\d+$/.test(a));
if (TARGETS.length === 0) TARGETS.push("sio", "sb");

/** Starts `target` under callgrind; its counts go to `out` when it exits. */
function startUnderCallgrind(target: string, port: number, redisUrl: string, out: string) {
  const script =
    target === "sio"
      ? here("./servers/stock-sio.mjs")
      : target === "sb"
        ? here("../bin/switchboard.js")
        : target;
  const serverArgs = target === "sio" ? [script, String(port), redisUrl] : [script, "gateway"];
  return spawn(
    "valgrind",
    [
      "--tool=callgrind",
      "--smc-check=all",
      `--callgrind-out-file=${out}`,
      "node",
      "--trace-gc",
      ...serverArgs,
    ],
    {
      env: {
        ...process.env,
        ...gatewayEnv(port, "callgrind", { BACKPLANE: "redis", REDIS_URL: redisUrl }),
      },
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
}

/** Counts the collections node's --trace-gc reports on `server`'s stdout. */
function countCollections(server: ChildProcess) {
  const counts = { scavenges: 0, markCompacts: 0 };
  let rest = "";
  server.stdout?.on("data", (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      if (line.includes(" Scavenge ")) counts.scavenges++;
      else if (line.includes(" Mark-Compact ")) counts.markCompacts++;
    }
  });
  return counts;
}

/** A client connected to `url`, retrying while the (slow) server starts; bounded to ~10 min. */
async function connect(url: string, server: ChildProcess): Promise<Socket> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (server.exitCode !== null) throw new Error(`server exited (${server.exitCode})`);
    const socket = io(url, {
      transports: ["websocket"],
      forceNew: true,
      reconnection: false,
      timeout: 60_000,
    });
    const ok = await new Promise<boolean>((resolve) => {
      socket.once("connect", () => resolve(true));
      socket.once("connect_error", () => resolve(false));
    });
    if (ok) return socket;
    socket.close();
    await sleep(1000);
  }
  throw new Error(`no connection to ${url}`);
}

async function measure(target: string, publishes: number): Promise<Run> {
  const redis = await startPrivateRedis();
  const port = await freePort();
  const out = join(tmpdir(), `switchboard-callgrind-${process.pid}-${port}.out`);
  const server = startUnderCallgrind(target, port, redis.url, out);
  const collections = countCollections(server);
  const exited = new Promise((resolve) => server.once("exit", resolve));
  const sockets: Socket[] = [];
  try {
    const url = `http://127.0.0.1:${port}`;
    const ack = (socket: Socket, event: string, arg: unknown) =>
      socket.timeout(120_000).emitWithAck(event, arg);
    let received = 0;
    for (let i = 0; i < 5; i++) {
      const member = await connect(url, server);
      sockets.push(member);
      await ack(member, "join", "bench:0");
      member.on("m", () => received++);
    }
    const publisher = await connect(url, server);
    sockets.push(publisher);
    const data = { p: 0, s: 0, pad: "x".repeat(60), seq: 0 };
    for (let i = 0; i < publishes; i++) {
      data.seq = i;
      data.s = Date.now();
      await ack(publisher, "publish", { room: "bench:0", event: "m", data });
    }
    const deadline = Date.now() + 120_000;
    while (received < 5 * publishes && Date.now() < deadline) await sleep(50);
    if (received < 5 * publishes)
      throw new Error(`${target}: ${received} of ${5 * publishes} delivered`);
  } finally {
    for (const socket of sockets) socket.close();
    server.kill("SIGTERM");
    await exited;
    await redis.stop();
  }
  const totals = /^totals: (\d+)/m.exec(readFileSync(out, "utf8"));
  rmSync(out, { force: true });
  if (!totals) throw new Error(`${target}: no callgrind totals`);
  return { target, publishes, instructions: Number(totals[1]), ...collections };
}

async function main() {
  console.log(`instructions per publish (5 deliveries), marginal from ${FROM} to ${TO} publishes`);
  for (const target of TARGETS) {
    const a = await measure(target, FROM);
    const b = await measure(target, TO);
    const perPublish = (b.instructions - a.instructions) / (TO - FROM);
    console.log(
      `${target}: ${Math.round(perPublish).toLocaleString("en")} per publish ` +
        `(${a.instructions.toLocaleString("en")} at ${FROM}, ${b.instructions.toLocaleString("en")} at ${TO}; ` +
        `scavenges ${a.scavenges} / ${b.scavenges}, mark-compacts ${a.markCompacts} / ${b.markCompacts})`,
    );
  }
}

runMain(main);
