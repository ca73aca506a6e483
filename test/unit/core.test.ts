import { describe, expect, it, vi } from "vitest";
import { ErrorCode, isSwitchboardError, SwitchboardError } from "../../core/errors.js";
import { isLogger, serializeError, silentLogger, stderrLogger } from "../../core/logger.js";
import { isReservedEvent, RESERVED_EVENT_NAMES } from "../../core/names.js";
import { redactSetting, redactUrl } from "../../core/redact.js";
import { backoff, backoffDelay, pause, withTimeout } from "../../core/retry.js";
import { positiveInt } from "../../core/validate.js";

describe("retry delays", () => {
  it("double from initialMs and never exceed maxMs, with jitter between half and all", () => {
    const options = { initialMs: 100, maxMs: 1000 };
    for (let i = 0; i < 200; i++) {
      for (const [attempt, base] of [
        [0, 100],
        [1, 200],
        [3, 800],
        [4, 1000],
        [50, 1000],
        [5000, 1000],
      ] as const) {
        const delay = backoffDelay(attempt, options);
        expect(delay).toBeGreaterThanOrEqual(base / 2);
        expect(delay).toBeLessThanOrEqual(base);
      }
    }
  });

  it("start over after reset()", () => {
    const delays = backoff({ initialMs: 100, maxMs: 100_000 });
    for (let i = 0; i < 6; i++) delays.next();
    expect(delays.next()).toBeGreaterThanOrEqual(3200);
    delays.reset();
    expect(delays.next()).toBeLessThanOrEqual(100);
  });

  it("a pause ends early when its signal aborts", async () => {
    const stop = new AbortController();
    const started = Date.now();
    const paused = pause(60_000, stop.signal);
    stop.abort();
    await paused;
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe("withTimeout", () => {
  it("passes the result through when the promise settles in time", async () => {
    await expect(withTimeout(Promise.resolve(7), 1000)).resolves.toBe(7);
    await expect(withTimeout(Promise.reject(new Error("no")), 1000)).rejects.toThrow("no");
  });

  it("resolves undefined at the bound without onTimeout, and rejects with its error with one", async () => {
    vi.useFakeTimers();
    try {
      const never = new Promise<number>(() => {});
      const quiet = withTimeout(never, 50);
      const loud = withTimeout(never, 50, () => new SwitchboardError(ErrorCode.CLOSED, "late"));
      const checked = expect(loud).rejects.toMatchObject({ code: "SWB_ERR_CLOSED" });
      await vi.advanceTimersByTimeAsync(60);
      await expect(quiet).resolves.toBeUndefined();
      await checked;
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("redaction", () => {
  it("hides a URL's password and never echoes an unparsable value", () => {
    expect(redactUrl("amqp://user:s3cret@host:5672/vh")).toBe("amqp://user:***@host:5672/vh");
    expect(redactUrl("redis://host:6379")).toBe("redis://host:6379");
    expect(redactUrl("::user:s3cret@")).not.toContain("s3cret");
    expect(redactSetting("AUTH_JWT_SECRET", "hunter2")).toBe("***");
    expect(redactSetting("PUBLISH_API_KEYS", "a,b")).toBe("***");
    expect(redactSetting("AMQP_URL", "amqp://u:p@h")).toBe("amqp://u:***@h");
    expect(redactSetting("PORT", "80")).toBe("80");
  });
});

describe("option validators", () => {
  it("accept a positive integer or the fallback, and name the option otherwise", () => {
    expect(positiveInt(undefined, "x", 5)).toBe(5);
    expect(positiveInt(3, "x", 5)).toBe(3);
    for (const bad of [0, -1, 1.5, Number.NaN, "3", null]) {
      let caught: unknown;
      try {
        positiveInt(bad, "timeoutMs", 5);
      } catch (err) {
        caught = err;
      }
      expect(isSwitchboardError(caught, ErrorCode.INVALID_ARGUMENT)).toBe(true);
      expect((caught as Error).message).toContain('"timeoutMs"');
    }
  });
});

describe("names", () => {
  it("reserve every event Socket.IO names itself, error included", () => {
    expect(RESERVED_EVENT_NAMES).toContain("error");
    expect(isReservedEvent("connect")).toBe(true);
    expect(isReservedEvent("message")).toBe(false);
  });
});

describe("the logger contract", () => {
  it("a JSON line keeps an error's type, stack, code and cause", () => {
    const cause = new Error("socket hang up");
    const err = new SwitchboardError(ErrorCode.BROKER_CONNECTION, "lost", { cause });
    const data = serializeError(err) as Record<string, unknown>;
    expect(data).toMatchObject({ type: "SwitchboardError", message: "lost" });
    expect(data.code).toBe("SWB_ERR_BROKER_CONNECTION");
    expect(String(data.stack)).toContain("lost");
    expect(data.cause).toMatchObject({ message: "socket hang up" });

    const lines: string[] = [];
    const spy = vi.spyOn(console, "warn").mockImplementation((line: string) => {
      lines.push(line);
    });
    try {
      stderrLogger("amqp").warn({ err }, "connection lost");
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(lines[0] as string)).toMatchObject({
      level: "warn",
      component: "amqp",
      msg: "connection lost",
      err: { message: "lost", cause: { message: "socket hang up" } },
    });
  });

  it("recognizes a logger by its four methods", () => {
    expect(isLogger(silentLogger)).toBe(true);
    expect(isLogger({ warn() {} })).toBe(false);
  });
});
