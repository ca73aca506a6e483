/**
 * A process that is not a gateway, publishing with `@socket.io/redis-emitter` as existing
 * Socket.IO users do: `node --import tsx redis-emitter-process.ts '<EmitterJob as JSON>'`.
 * Exits 0 once every emit was handed to Redis, 1 on any error.
 */
import { Emitter } from "@socket.io/redis-emitter";
import { Redis } from "ioredis";

export interface EmitterJob {
  url: string;
  emits: Array<{ nsp?: string; to?: string[]; except?: string[]; event: string; data: unknown }>;
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2] ?? "") as EmitterJob;
  const redis = new Redis(job.url, { maxRetriesPerRequest: 1 });
  const emitter = new Emitter(redis);
  for (const { nsp = "/", to = [], except = [], event, data } of job.emits) {
    emitter.of(nsp).to(to).except(except).emit(event, data);
  }
  await redis.quit(); // answers after every PUBLISH sent before it
}

main().catch((err: unknown) => {
  process.stderr.write(
    `redis-emitter-process: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
