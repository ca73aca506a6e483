import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { listener, prepareBrokers, startPublishGateway, uniqueNames } from "../support/publish.js";
import { waitFor } from "../support/wait.js";

const run = promisify(execFile);
const example = (name: string) =>
  fileURLToPath(new URL(`../../examples/python/${name}`, import.meta.url));
// Debian's python3-pika and python3-redis install for the system interpreter (CI installs them),
// which a pyenv python3 earlier on PATH would not see.
const PYTHON = "/usr/bin/python3";

describe("the Python examples in examples/python publish to Socket.IO clients", () => {
  it.each([
    {
      script: "publish_pika.py",
      env: async (names: ReturnType<typeof uniqueNames>) => ({
        AMQP_URL: await amqpUrl(),
        SWITCHBOARD_QUEUE: names.queue,
      }),
    },
    {
      script: "publish_redis.py",
      env: async (names: ReturnType<typeof uniqueNames>) => ({
        REDIS_URL: await redisUrl(),
        SWITCHBOARD_STREAM: names.stream,
      }),
    },
  ])("$script reaches a client of another gateway", async ({ script, env }) => {
    const names = uniqueNames();
    await prepareBrokers(names);
    await startPublishGateway({ names });
    const clientsGateway = await startPublishGateway({ names, ingest: false });
    const client = await listener(clientsGateway, [names.room]);

    const { stdout } = await run(PYTHON, [example(script), names.room, "hello from Python"], {
      env: { PATH: process.env.PATH ?? "", ...(await env(names)) },
      timeout: 20_000,
    });
    const id = /^published (\S+)/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    await waitFor(() => client.received.length > 0, {
      message: "the Python command at the client",
    });
    expect(client.received).toEqual([{ data: { text: "hello from Python" }, id }]);
  });
});
