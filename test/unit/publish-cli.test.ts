import { describe, expect, it } from "vitest";
import { runPublishCli } from "../../services/publisher/cli.js";
import { createPublisher } from "../../services/publisher/index.js";

async function cli(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runPublishCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("switchboard publish: readable errors and exit codes", () => {
  it("exits 64 with the usage for bad usage", async () => {
    for (const [args, message] of [
      [["--event", "m"], "--via must be amqp, redis or http"],
      [["--via", "redis"], "--event is required"],
      [["--via", "redis", "--event", "m", "--data", "{x"], "--data is not JSON"],
      [["--via", "http", "--event", "m"], "--key is required with --via http"],
      [["--via", "redis", "--event", "m", "--bogus"], "Unknown option '--bogus'"],
      [
        ["--via", "redis", "--event", "m", "--queue", "q"],
        "--queue is only valid with --via amqp (got --via redis)",
      ],
      [
        ["--via", "http", "--key", "k", "--event", "m", "--queue", "q"],
        "--queue is only valid with --via amqp (got --via http)",
      ],
      [
        ["--via", "amqp", "--event", "m", "--stream", "s"],
        "--stream is only valid with --via redis (got --via amqp)",
      ],
      [
        ["--via", "http", "--key", "k", "--event", "m", "--stream", "s"],
        "--stream is only valid with --via redis (got --via http)",
      ],
      [
        ["--via", "amqp", "--event", "m", "--key", "k"],
        "--key is only valid with --via http (got --via amqp)",
      ],
      [
        ["--via", "redis", "--event", "m", "--key", "k"],
        "--key is only valid with --via http (got --via redis)",
      ],
    ] as const) {
      const { code, err } = await cli([...args]);
      expect(code, message).toBe(64);
      expect(err).toContain(`switchboard publish: ${message}`);
      expect(err).toContain("usage: switchboard publish");
    }
  });

  it("exits 65 for a command the schema refuses, naming the field", async () => {
    const { code, err } = await cli(["--via", "redis", "--event", "m", "--room", "no spaces"]);
    expect(code).toBe(65);
    expect(err).toBe(
      "switchboard publish: invalid publish command: rooms[0]: must be 1-200 chars of [A-Za-z0-9:_.@/-]",
    );
  });

  it("exits 69 when the broker or gateway cannot be reached", async () => {
    for (const via of ["amqp", "http"]) {
      const url = via === "amqp" ? "amqp://127.0.0.1:9" : "http://127.0.0.1:9";
      const key = via === "http" ? ["--key", "k"] : [];
      const { code, err } = await cli(["--via", via, "--url", url, ...key, "--event", "m"]);
      expect(code, via).toBe(69);
      expect(err, via).toMatch(
        /^switchboard publish: cannot (connect to RabbitMQ|reach http:\/\/127\.0\.0\.1:9)/,
      );
    }
  });
});

describe("createPublisher", () => {
  it("checks its options up front, naming the option", () => {
    expect(() => createPublisher({ via: "smtp" } as never)).toThrow(/option "via"/);
    expect(() => createPublisher({ via: "redis", url: "" })).toThrow(/option "url"/);
    expect(() => createPublisher({ via: "http", url: "http://x", apiKey: "" })).toThrow(
      /option "apiKey"/,
    );
  });

  it("refuses a bad command with SWB_ERR_INVALID_ARGUMENT before connecting", async () => {
    const publisher = createPublisher({ via: "amqp", url: "amqp://127.0.0.1:9" });
    await expect(publisher.publish({ event: "connect" })).rejects.toMatchObject({
      code: "SWB_ERR_INVALID_ARGUMENT",
      details: { code: "invalid_command" },
    });
    await publisher.close();
    await publisher.close();
    await expect(publisher.publish({ event: "m" })).rejects.toMatchObject({
      code: "SWB_ERR_CLOSED",
    });
  });
});
