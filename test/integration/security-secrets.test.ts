import { describe, expect, it, onTestFinished } from "vitest";
import { amqpUrl } from "../support/brokers.js";
import { startGateway } from "../support/gateway-process.js";
import { startPrivateRedis } from "../support/redis-server.js";
import { waitFor } from "../support/wait.js";

/**
 * Secrets never reach the output: a gateway started with passwords in its broker URLs, a JWT
 * secret, API and metrics keys, refused by both brokers and driven with bad requests, prints
 * none of them, and says what failed (authentication) instead of an unhandled rejection.
 */
describe("secrets in the gateway's output", () => {
  it("wrong broker passwords are logged as authentication failures, and no secret is printed", {
    timeout: 90_000,
  }, async () => {
    const redis = await startPrivateRedis(["--requirepass", "the-right-redis-password"]);
    onTestFinished(() => redis.stop());
    const amqp = new URL(await amqpUrl());
    amqp.password = "s3cret-amqp-pw";
    const secrets = {
      redis: "s3cret-redis-pw",
      amqp: "s3cret-amqp-pw",
      jwt: "s3cret-jwt-0123456789-0123456789-0123",
      apiKey: "s3cret-api-key-0123",
      metrics: "s3cret-metrics-token-0123",
    };
    const gateway = await startGateway({
      waitFor: "healthy",
      env: {
        LOG_LEVEL: "debug",
        BACKPLANE: "redis",
        REDIS_URL: `redis://:${secrets.redis}@127.0.0.1:${redis.port}`,
        AMQP_URL: amqp.toString(),
        AUTH_JWT_SECRET: secrets.jwt,
        PUBLISH_API_KEYS: secrets.apiKey,
        METRICS_TOKEN: secrets.metrics,
      },
    });
    onTestFinished(() => gateway.stop());
    // Bad requests of every kind: wrong keys, a token signed with the secret as garbage.
    await fetch(`${gateway.url}/v1/publish`, {
      method: "POST",
      headers: { authorization: `Bearer ${secrets.apiKey}x` },
      body: "{",
    });
    await fetch(`${gateway.url}/metrics`, { headers: { authorization: `Bearer ${secrets.jwt}` } });
    await fetch(`${gateway.url}/socket.io/?EIO=4&transport=polling&token=${secrets.jwt}`);
    try {
      await waitFor(() => gateway.output().includes("broker authentication failed"), {
        timeoutMs: 40_000,
        message: "the Redis authentication failure in the log",
      });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${gateway.output().slice(-4000)}`);
    }
    await gateway.stop();
    const output = gateway.output();
    for (const secret of Object.values(secrets)) expect(output).not.toContain(secret);
    expect(output).not.toContain("unhandled rejection");
    expect(output).toContain("broker authentication failed: check the credentials in REDIS_URL");
  });

  it("a configuration error on an unparsable URL does not print it", async () => {
    const gateway = await startGateway({
      waitFor: "nothing",
      env: { BACKPLANE: "redis", REDIS_URL: "redis://user:s3cret pw@[bad" },
    });
    expect((await gateway.exited).code).toBe(78);
    expect(gateway.output()).toContain("invalid environment variable REDIS_URL");
    expect(gateway.output()).not.toContain("s3cret");
  });
});
