/**
 * Child process of amqp-parity.test.ts: on a 2-server cluster of the column
 * named by argv[2], server 0 calls `serverSideEmit` with an ack callback that
 * throws once server 1 answered. Prints one JSON line: the message of the
 * uncaught exception that reached the process, or null if none did within
 * the bound (the callback's exception was swallowed somewhere).
 */
import { columns } from "./amqp-parity-columns.js";

const THROWN = "thrown by the user's ack callback";

async function main(name: string): Promise<void> {
  const column = columns.find((c) => c.name === name);
  if (!column) throw new Error(`no column ${name}`);
  const cluster = await column.start({ nodes: 2, requestsTimeoutMs: 5_000 });
  const report = async (uncaught: string | null) => {
    console.log(JSON.stringify({ uncaught }));
    await cluster.close().catch(() => undefined);
    process.exit(0);
  };
  process.on("uncaughtException", (err) => void report(err.message));
  const bound = setTimeout(() => void report(null), 8_000);
  bound.unref();
  cluster.servers[1]?.on("ping", (ack: (a: string) => void) => ack("pong"));
  cluster.servers[0]?.serverSideEmit("ping", (err: unknown, answers: unknown[]) => {
    if (err === null && answers.length === 1) throw new Error(THROWN);
  });
}

main(process.argv[2] ?? "").catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
