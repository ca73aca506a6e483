import { randomUUID } from "node:crypto";
import { amqpUrl, redisUrl } from "../test/support/brokers.js";
import { type GatewayProcess, startGateway } from "../test/support/gateway-process.js";

export type BenchBackplane = "redis" | "amqp" | "amqp-fanout";

/** Starts `count` real gateway processes on one backplane; client rate limits lifted. */
export async function startGateways(
  backplane: BenchBackplane,
  count: number,
  extraEnv: Record<string, string> = {},
) {
  const env: Record<string, string> = {
    RATE_LIMIT_PER_SEC: "1000000",
    RATE_LIMIT_BURST: "1000000",
    MAX_STRIKES: "1000000",
    LOG_LEVEL: "warn",
    INGEST: "off",
    ...extraEnv,
  };
  if (backplane === "redis") {
    Object.assign(env, { BACKPLANE: "redis", REDIS_URL: await redisUrl() });
  } else {
    Object.assign(env, {
      BACKPLANE: "amqp",
      AMQP_URL: await amqpUrl(),
      AMQP_EXCHANGE: `bench.${randomUUID().slice(0, 8)}`,
      AMQP_ROOM_ROUTING: backplane === "amqp" ? "on" : "off",
    });
  }
  const gateways: GatewayProcess[] = [];
  for (let i = 0; i < count; i++) {
    gateways.push(await startGateway({ env: { ...env, GATEWAY_ID: `bench-${backplane}-${i}` } }));
  }
  return {
    gateways,
    urls: gateways.map((g) => g.url),
    stop: () => Promise.all(gateways.map((g) => g.stop())),
  };
}

/** Reads one sample from a gateway's /metrics (sum over label sets). */
export async function scrape(url: string, metric: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${metric}{`) || line.startsWith(`${metric} `)) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}
