import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import amqplib from "amqplib";
import { io, type Socket } from "socket.io-client";
import { amqpUrl } from "../test/support/brokers.js";
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
 * `BACKPLANE=amqp` on the local RabbitMQ (AMQP_URL, or 127.0.0.1:5672), each run on an exchange
 * of its own (`bench.callgrind.<pid>.<port>`, deleted after; the node queues are exclusive):
 * - `sb-amqp`: the same single server: the publishing side (encode, amqplib publish, socket
 *   write, local delivery) and the drop of its own echo (room routing binds the room's key);
 * - `sb-amqp-recv`: the 5 members on the measured gateway, the publisher on a second gateway
 *   (not under callgrind) that has no member: the receiving side (amqplib's frame parse, the
 *   transport's delivery, decode, local delivery). Each publish waits for the 5 deliveries, so
 *   the measured gateway reads one broadcast at a time, as at the bench's rate.
 * Either takes `=path/to/bin/switchboard.js` for another build (`sb-amqp=/tmp/base/bin/…`).
 *
 *   node --import tsx bench/instructions.ts [from=2000] [to=5000] [sio|sb|sb-amqp[-recv][=bin]|path/to/bin/switchboard.js ...]
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

/** What a target names: the server to run, its backplane, and whether its peer publishes. */
interface Setup {
  script: string;
  stock: boolean;
  backplane: "redis" | "amqp";
  /** The publisher on a second gateway (not measured): the measured one only receives. */
  receiveOnly: boolean;
}

function setupOf(target: string): Setup {
  if (target === "sio")
    return {
      script: here("./servers/stock-sio.mjs"),
      stock: true,
      backplane: "redis",
      receiveOnly: false,
    };
  const [name = "", bin] = target.split("=");
  if (name === "sb-amqp" || name === "sb-amqp-recv")
    return {
      script: bin ?? here("../bin/switchboard.js"),
      stock: false,
      backplane: "amqp",
      receiveOnly: name === "sb-amqp-recv",
    };
  return {
    script: target === "sb" ? here("../bin/switchboard.js") : target,
    stock: false,
    backplane: "redis",
    receiveOnly: false,
  };
}

/** The gateway's environment for `setup`'s backplane; `broker` is a Redis URL or an AMQP URL. */
function backplaneEnv(setup: Setup, broker: string, exchange: string): Record<string, string> {
  return setup.backplane === "amqp"
    ? { BACKPLANE: "amqp", AMQP_URL: broker, AMQP_EXCHANGE: exchange }
    : { BACKPLANE: "redis", REDIS_URL: broker };
}

/** Starts `setup`'s server under callgrind; its counts go to `out` when it exits. */
function startUnderCallgrind(
  setup: Setup,
  port: number,
  env: Record<string, string>,
  broker: string,
  out: string,
) {
  const serverArgs = setup.stock ? [setup.script, String(port), broker] : [setup.script, "gateway"];
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
        ...gatewayEnv(port, "callgrind", env),
      },
      stdio: ["ignore", "pipe", "ignore"],
    },
  );
}

/** The publishing gateway of `sb-amqp-recv`, at full speed (no callgrind). */
function startPeer(setup: Setup, port: number, env: Record<string, string>) {
  return spawn(process.execPath, [setup.script, "gateway"], {
    env: { ...process.env, ...gatewayEnv(port, "peer", env) },
    stdio: ["ignore", "ignore", "inherit"],
  });
}

/** Deletes a run's exchange (its queues were exclusive: gone with the gateways' connections). */
async function deleteExchange(url: string, exchange: string) {
  const connection = await amqplib.connect(url);
  try {
    const channel = await connection.createChannel();
    await channel.deleteExchange(exchange);
  } finally {
    await connection.close();
  }
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
  const setup = setupOf(target);
  const redis = setup.backplane === "redis" ? await startPrivateRedis() : undefined;
  const broker = redis ? redis.url : await amqpUrl();
  const port = await freePort();
  const exchange = `bench.callgrind.${process.pid}.${port}`;
  const env = backplaneEnv(setup, broker, exchange);
  const out = join(tmpdir(), `switchboard-callgrind-${process.pid}-${port}.out`);
  const server = startUnderCallgrind(setup, port, env, broker, out);
  const collections = countCollections(server);
  const exited = new Promise((resolve) => server.once("exit", resolve));
  const peerPort = setup.receiveOnly ? await freePort() : undefined;
  const peer = peerPort === undefined ? undefined : startPeer(setup, peerPort, env);
  const peerExited = peer && new Promise((resolve) => peer.once("exit", resolve));
  const sockets: Socket[] = [];
  try {
    const url = `http://127.0.0.1:${port}`;
    const ack = (socket: Socket, event: string, arg: unknown) =>
      socket.timeout(120_000).emitWithAck(event, arg);
    let received = 0;
    let onReceived: (() => void) | undefined;
    for (let i = 0; i < 5; i++) {
      const member = await connect(url, server);
      sockets.push(member);
      await ack(member, "join", "bench:0");
      member.on("m", () => {
        received++;
        onReceived?.();
      });
    }
    const publisher = await connect(peer ? `http://127.0.0.1:${peerPort}` : url, peer ?? server);
    sockets.push(publisher);
    const data = { p: 0, s: 0, pad: "x".repeat(60), seq: 0 };
    for (let i = 0; i < publishes; i++) {
      data.seq = i;
      data.s = Date.now();
      await ack(publisher, "publish", { room: "bench:0", event: "m", data });
      if (peer)
        await delivered(
          () => received >= 5 * (i + 1),
          (f) => (onReceived = f),
        );
    }
    const deadline = Date.now() + 120_000;
    while (received < 5 * publishes && Date.now() < deadline) await sleep(50);
    if (received < 5 * publishes)
      throw new Error(`${target}: ${received} of ${5 * publishes} delivered`);
  } finally {
    for (const socket of sockets) socket.close();
    server.kill("SIGTERM");
    peer?.kill("SIGTERM");
    await exited;
    await peerExited;
    if (redis) await redis.stop();
    else await deleteExchange(broker, exchange);
  }
  const totals = /^totals: (\d+)/m.exec(readFileSync(out, "utf8"));
  // INSTRUCTIONS_KEEP_DIR=dir keeps each run's callgrind file there, for callgrind_annotate.
  const keep = process.env.INSTRUCTIONS_KEEP_DIR;
  if (keep) copyFileSync(out, join(keep, `${target.replace(/[^\w.-]+/g, "_")}-${publishes}.out`));
  rmSync(out, { force: true });
  if (!totals) throw new Error(`${target}: no callgrind totals`);
  return { target, publishes, instructions: Number(totals[1]), ...collections };
}

/** Resolves once `done()` holds, checked at each delivery; bounded to 2 minutes. */
function delivered(done: () => boolean, listen: (f: (() => void) | undefined) => void) {
  if (done()) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      listen(undefined);
      reject(new Error("a broadcast was not delivered within 2 minutes"));
    }, 120_000);
    listen(() => {
      if (!done()) return;
      clearTimeout(timer);
      listen(undefined);
      resolve();
    });
  });
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
