import { describe, expect, it } from "vitest";
import { ErrorCode, isSwitchboardError } from "../../core/errors.js";
import { planAddresses } from "../../services/loadtest/addresses.js";
import { duration, parseLoadtestArgs } from "../../services/loadtest/options.js";
import { SequenceTracker } from "../../services/loadtest/sequence.js";

const usage = (argv: string[]) => {
  try {
    parseLoadtestArgs(argv);
  } catch (err) {
    expect(isSwitchboardError(err, ErrorCode.USAGE)).toBe(true);
    return (err as Error).message;
  }
  throw new Error("expected a usage error");
};

describe("loadtest options", () => {
  it("takes the issue's command line", () => {
    const o = parseLoadtestArgs(
      `--url http://a:1,http://b:2 --clients 1000 --rooms 50 --rate 200 --duration 60s --payload 512 --ramp 500/s --publishers 20 --transport polling --json r.json --html r.html --max-loss 0 --max-p99 250 --workers 3`.split(
        " ",
      ),
    );
    expect(o).toMatchObject({
      urls: ["http://a:1", "http://b:2"],
      clients: 1000,
      rooms: 50,
      rate: 200,
      durationMs: 60_000,
      payloadBytes: 512,
      rampPerSec: 500,
      publishers: 20,
      transport: "polling",
      jsonFile: "r.json",
      htmlFile: "r.html",
      maxLoss: { kind: "count", value: 0 },
      maxP99Ms: 250,
      workers: 3,
    });
  });

  it("defaults to one publisher per 10 msgs/s, so each stays under the gateway's rate limit", () => {
    expect(parseLoadtestArgs(["--rate", "95"]).publishers).toBe(10);
    expect(parseLoadtestArgs(["--rate", "95", "--clients", "4", "--rooms", "2"]).publishers).toBe(
      4,
    );
    expect(parseLoadtestArgs(["--rate", "0"]).publishers).toBe(1);
  });

  it("reads durations in ms, s, m and plain seconds", () => {
    expect(duration("d", "500ms", 0)).toBe(500);
    expect(duration("d", "1.5s", 0)).toBe(1500);
    expect(duration("d", "2m", 0)).toBe(120_000);
    expect(duration("d", "3", 0)).toBe(3000);
  });

  it("refuses what it cannot honour, naming the flag", () => {
    expect(usage(["--duration", "soon"])).toContain("--duration");
    expect(usage(["--rate", "fast"])).toContain("--rate");
    expect(usage(["--clients", "0"])).toContain("--clients");
    expect(usage(["--rooms", "20", "--clients", "10"])).toContain("--rooms");
    expect(usage(["--url", "ftp://x"])).toContain("--url");
    expect(usage(["--transport", "udp"])).toContain("--transport");
    expect(usage(["--publish-via", "http"])).toContain("--api-key");
    expect(usage(["--api-key", "k"])).toContain("--api-key");
    expect(usage(["--publish-via", "amqp", "--publishers", "3"])).toContain("--publishers");
    expect(usage(["--redis-url", "redis://x"])).toContain("--redis-url");
    expect(usage(["--token", "t", "--token-secret", "x".repeat(32)])).toContain("--token");
    expect(usage(["--token-secret", "short"])).toContain("32");
    expect(usage(["--token-issuer", "https://i"])).toContain("--token-issuer");
    expect(usage(["--max-loss", "-1"])).toContain("--max-loss");
    expect(usage(["--max-loss", "0.5"])).toContain("--max-loss");
    expect(usage(["--ramp", "fast"])).toContain("--ramp");
    expect(usage(["--workers", "5", "--clients", "2", "--rooms", "1"])).toContain("--workers");
    expect(usage(["--scenario", "connect-storm", "--rate", "10"])).toContain("--rate");
    expect(usage(["--bogus"])).toContain("--bogus");
    expect(usage(["extra"])).toContain("extra");
  });

  it("takes a loss limit as a count or a percentage", () => {
    expect(parseLoadtestArgs(["--max-loss", "0.1%"]).maxLoss).toEqual({
      kind: "percent",
      value: 0.1,
    });
    expect(parseLoadtestArgs(["--max-loss", "5"]).maxLoss).toEqual({ kind: "count", value: 5 });
  });
});

describe("source addresses", () => {
  it("lets the OS choose while one address's ports suffice", () => {
    const plan = planAddresses(parseLoadtestArgs(["--clients", "100", "--rooms", "1"]), 1000);
    expect(plan.addresses).toEqual([]);
    expect(plan.addressOf(5)).toBeUndefined();
  });

  it("spreads loopback clients over 127.0.0.x when they exceed one address's ports", () => {
    const options = parseLoadtestArgs([
      "--url",
      "http://127.0.0.1:3000,http://127.0.0.1:3001",
      "--clients",
      "5000",
      "--rooms",
      "1",
    ]);
    const plan = planAddresses(options, 1000);
    // 2500 per URL over 1000 ports each: 3 addresses.
    expect(plan.addresses).toEqual(["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    const perAddress = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const a = plan.addressOf(i) as string;
      perAddress.set(a, (perAddress.get(a) ?? 0) + 1);
    }
    for (const n of perAddress.values()) expect(n / 2).toBeLessThanOrEqual(1000);
  });

  it("says so when a remote target needs more ports than one address has", () => {
    const options = parseLoadtestArgs(["--url", "http://10.0.0.1:3000", "--clients", "5000"]);
    expect(planAddresses(options, 1000).warning).toContain("--local-addresses");
  });

  it("uses the given --local-addresses in turn", () => {
    const plan = planAddresses(
      parseLoadtestArgs([
        "--local-addresses",
        "127.0.0.5,127.0.0.6",
        "--clients",
        "4",
        "--rooms",
        "1",
      ]),
    );
    expect([0, 1, 2, 3].map((i) => plan.addressOf(i))).toEqual([
      "127.0.0.5",
      "127.0.0.6",
      "127.0.0.5",
      "127.0.0.6",
    ]);
  });
});

describe("sequence tracking", () => {
  it("counts a late message that fills a gap as out of order, a repeat as duplicate", () => {
    const t = new SequenceTracker();
    expect([0, 1, 3, 2, 2, 4, 0].map((s) => t.receive(s))).toEqual([
      "in-order",
      "in-order",
      "in-order",
      "out-of-order",
      "duplicate",
      "in-order",
      "duplicate",
    ]);
  });

  it("does not call a gap disorder: a lost message is only missing", () => {
    const t = new SequenceTracker();
    expect([0, 5, 6].map((s) => t.receive(s))).toEqual(["in-order", "in-order", "in-order"]);
  });
});
