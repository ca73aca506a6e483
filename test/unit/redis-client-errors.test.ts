import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { createRedisBackplane, logClientErrors } from "../../adapters/redis/index.js";
import type { Logger } from "../../core/logger.js";
import { freePort } from "../support/ports.js";
import { waitFor } from "../support/wait.js";

function recordingLogger() {
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const at =
    (level: string) =>
    (fields: object, message: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, message });
    };
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
  };
  return { logger, lines };
}

describe("Redis client errors are logged, one line per change of state", () => {
  it("logs the first error of an outage, then nothing until the connection is ready again", () => {
    const { logger, lines } = recordingLogger();
    const client = new EventEmitter();
    logClientErrors(client, "publisher", logger);
    for (let i = 0; i < 50; i++) client.emit("error", new Error(`connect ECONNREFUSED #${i}`));
    expect(lines.map((l) => [l.level, l.fields.reason])).toEqual([
      ["warn", "connect ECONNREFUSED #0"],
    ]);
    client.emit("ready");
    client.emit("ready");
    expect(lines.map((l) => [l.level, l.message])).toEqual([
      ["warn", expect.stringContaining("Redis connection error")],
      ["info", "Redis connection ready again"],
    ]);
    // ioredis attaches the failed command to its errors: an AUTH's arguments are the password.
    const wrongPass = Object.assign(new Error("WRONGPASS invalid username-password pair"), {
      command: { name: "auth", args: ["default", "s3cret-pw"] },
    });
    client.emit("error", wrongPass);
    client.emit("error", new Error("still down"));
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({
      level: "warn",
      fields: { connection: "publisher", reason: "WRONGPASS invalid username-password pair" },
    });
    expect(JSON.stringify(lines)).not.toContain("s3cret-pw");
  });

  it("a backplane whose Redis is unreachable logs through its logger, not as unhandled errors", async () => {
    const { logger, lines } = recordingLogger();
    const port = await freePort();
    const backplane = createRedisBackplane("redis", { url: `redis://127.0.0.1:${port}`, logger });
    try {
      await waitFor(() => lines.filter((l) => l.level === "warn").length >= 2, {
        timeoutMs: 10_000,
        message: "a warning for each of the two connections",
      });
      const warned = lines.filter((l) => l.level === "warn");
      expect(warned.map((l) => l.fields.connection).sort()).toEqual(["publisher", "subscriber"]);
      expect(warned[0]!.fields).toMatchObject({ code: "ECONNREFUSED" });
      expect(backplane.isConnected()).toBe(false);
    } finally {
      await backplane.close();
    }
  });
});
