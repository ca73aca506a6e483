import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import type { PublishCommand } from "../../core/publish-command.js";
import { createPublisher, type PublisherOptions } from "../../services/publisher/index.js";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { type GatewayProcess, sourceCliArgv } from "../support/gateway-process.js";
import {
  API_KEY,
  amqpConnection,
  listener,
  prepareBrokers,
  redisClient,
  startPublishGateway,
  uniqueNames,
} from "../support/publish.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);

type Send = (command: Omit<PublishCommand, "v">) => Promise<void>;

/**
 * Gateway A consumes the queue and the stream; gateway B does not (INGEST=off) and answers HTTP.
 * Both run on the Redis backplane, so every path crosses processes to reach B's clients.
 */
describe("every publishing path reaches clients on every gateway, filtered by rooms and except", () => {
  const names = uniqueNames();
  const cleanups: Array<() => Promise<void>> = [];
  const cleanup = (task: () => Promise<void>) => void cleanups.unshift(task);
  let a: GatewayProcess;
  let b: GatewayProcess;
  let count = 0;

  beforeAll(async () => {
    await prepareBrokers(names, cleanup);
    [a, b] = await Promise.all([
      startPublishGateway({ names }, cleanup),
      startPublishGateway({ names, ingest: false }, cleanup),
    ]);
  });
  afterAll(async () => {
    for (const task of cleanups) await task();
  });

  /** Sends one command to a room (minus a muted room), then a marker everyone gets, and checks. */
  async function expectFilteredDelivery(send: Send) {
    count += 1;
    const room = `${names.room}:${count}`;
    const muted = `${names.muted}:${count}`;
    const other = `other:${names.room}:${count}`;
    const onA = await listener(a, [room]);
    const onB = await listener(b, [room]);
    const mutedOnB = await listener(b, [room, muted]);
    const elsewhereOnA = await listener(a, [other]);
    const id = `cmd-${count}`;
    await send({
      id,
      rooms: [room],
      except: [muted],
      event: "message",
      data: { text: "hi", count },
    });
    await send({ id: `marker-${count}`, rooms: [room, other], event: "message", data: "marker" });
    const everyone = [onA, onB, mutedOnB, elsewhereOnA];
    await waitFor(() => everyone.every((c) => c.received.some((r) => r.data === "marker")), {
      timeoutMs: 15_000,
      message: "the marker at every client",
    });
    const message = { data: { text: "hi", count }, id };
    const marker = { data: "marker", id: `marker-${count}` };
    expect(onA.received).toEqual([message, marker]);
    expect(onB.received).toEqual([message, marker]);
    expect(mutedOnB.received).toEqual([marker]);
    expect(elsewhereOnA.received).toEqual([marker]);
  }

  it("a command put on the RabbitMQ queue by any AMQP client", async () => {
    const channel = await (await amqpConnection()).createConfirmChannel();
    await expectFilteredDelivery(async (command) => {
      channel.sendToQueue(names.queue, Buffer.from(JSON.stringify({ v: 1, ...command })), {
        persistent: true,
      });
      await channel.waitForConfirms();
    });
  });

  it("a command added to the Redis stream by any Redis client", async () => {
    const redis = await redisClient();
    await expectFilteredDelivery(async (command) => {
      await redis.xadd(names.stream, "*", "command", JSON.stringify({ v: 1, ...command }));
    });
  });

  it("a command posted to POST /v1/publish of a gateway that does not consume", async () => {
    await expectFilteredDelivery(async (command) => {
      const res = await fetch(`${b.url}/v1/publish`, {
        method: "POST",
        headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ v: 1, ...command }),
      });
      expect(res.status).toBe(202);
      expect(await res.json()).toEqual({ ok: true, id: command.id });
    });
  });

  it.each(["amqp", "redis", "http"] as const)("the Node publisher library via %s", async (via) => {
    const options: PublisherOptions =
      via === "amqp"
        ? { via, url: await amqpUrl(), queue: names.queue }
        : via === "redis"
          ? { via, url: await redisUrl(), stream: names.stream }
          : { via, url: b.url, apiKey: API_KEY };
    const publisher = createPublisher(options);
    onTestFinished(() => publisher.close());
    await expectFilteredDelivery(async (command) => {
      const result = await publisher.publish(command);
      expect(result).toEqual({ id: command.id, via });
    });
  });

  it.each(["amqp", "redis", "http"] as const)(
    "the CLI: switchboard publish --via %s",
    async (via) => {
      const target =
        via === "amqp"
          ? ["--url", await amqpUrl(), "--queue", names.queue]
          : via === "redis"
            ? ["--url", await redisUrl(), "--stream", names.stream]
            : ["--url", b.url, "--key", API_KEY];
      await expectFilteredDelivery(async (command) => {
        const args = ["publish", "--via", via, ...target, "--event", command.event];
        args.push("--data", JSON.stringify(command.data), "--id", command.id ?? "");
        for (const room of command.rooms ?? []) args.push("--room", room);
        for (const room of command.except ?? []) args.push("--except", room);
        const { stdout } = await run(process.execPath, sourceCliArgv(args), { timeout: 20_000 });
        expect(stdout.trim()).toBe(`published ${command.id} via ${via}`);
      });
    },
  );
});
