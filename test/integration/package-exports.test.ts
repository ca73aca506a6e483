import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { amqpUrl } from "../support/brokers.js";
import { closeAllClients, connectClient } from "../support/clients.js";
import { freePort } from "../support/ports.js";
import { nextEvent, waitFor } from "../support/wait.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
afterEach(() => closeAllClients());

/**
 * What a Socket.IO author does: import the adapter by the package's export path (built JS in
 * dist/, no TypeScript loader) in a plain server. This runs examples/node/amqp-adapter.mjs.
 */
describe("switchboard/adapters/amqp as a library", () => {
  it("the documented example serves clients and its emitter reaches them", async () => {
    const port = await freePort();
    const child = spawn(process.execPath, ["examples/node/amqp-adapter.mjs"], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? "",
        AMQP_URL: await amqpUrl(),
        AMQP_EXCHANGE: `test.example.${randomUUID().slice(0, 8)}`,
        PORT: String(port),
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      output += c.toString();
    });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    onTestFinished(async () => {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    });
    await waitFor(() => output.includes("listening on"), {
      timeoutMs: 20_000,
      message: `the example to listen: ${output}`,
    });

    const client = await connectClient(`http://127.0.0.1:${port}`);
    // The server joins every socket to chat:1; signal the emitter until the message arrives.
    const message = nextEvent<[unknown]>(client as never, "message", 15_000);
    const poke = setInterval(() => child.kill("SIGUSR2"), 200);
    try {
      const [data] = await message;
      expect(data).toEqual({ text: "hi from the emitter" });
    } finally {
      clearInterval(poke);
    }
  });
});
