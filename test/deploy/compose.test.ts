import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it, onTestFinished } from "vitest";
import { parse } from "yaml";
import { loadConfig, VARIABLES } from "../../services/gateway/config.js";
import { amqpUrl, redisUrl } from "../support/brokers.js";
import { startGateway } from "../support/gateway-process.js";
import { prepareBrokers, uniqueNames } from "../support/publish.js";
import { type ComposeService, durationMs, loadCompose } from "./compose.js";
import { HAPROXY_CFG } from "./haproxy.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const COMPOSE = join(ROOT, "docker-compose.yml");

const NETWORK_BACKPLANES = ["redis", "redis-sharded", "redis-streams", "amqp"] as const;

function gatewaysOf(services: Record<string, ComposeService>) {
  return Object.entries(services).filter(([, s]) => s.build?.dockerfile === "deploy/Dockerfile");
}

function envOf(service: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, v === null ? "" : String(v)]),
  );
}

function expectConfigError(run: () => unknown, variable: string) {
  try {
    run();
  } catch (err) {
    expect((err as { code?: string }).code).toBe("SWB_ERR_INVALID_CONFIG");
    expect((err as Error).message).toContain(variable);
    return;
  }
  throw new Error(`expected the config schema to refuse ${variable}`);
}

/** What the operator must export before `docker compose up`: the publish API key. */
const OPERATOR = { PUBLISH_API_KEYS: "compose-operator-key-7f3a9c" };

describe("docker-compose.yml against the gateway's config schema", () => {
  it("refuses to start without a publish API key of the operator's own (no shared default key)", () => {
    expect(() => loadCompose(COMPOSE, {})).toThrow(/PUBLISH_API_KEYS is required/);
  });

  const compose = loadCompose(COMPOSE, OPERATOR);
  const gateways = gatewaysOf(compose.services);

  it("has three gateways built from deploy/Dockerfile with distinct ids, reachable only through the balancer", () => {
    expect(gateways.map(([name]) => name)).toEqual(["gateway-1", "gateway-2", "gateway-3"]);
    const ids = gateways.map(([, s]) => loadConfig(envOf(s)).gatewayId);
    expect(new Set(ids).size).toBe(3);
    for (const [, service] of gateways) {
      expect(service.build?.context).toBe(".");
      expect(existsSync(join(ROOT, service.build!.dockerfile!))).toBe(true);
      expect(service.ports ?? []).toEqual([]);
    }
    expect(compose.services.lb?.ports).toContain("8080:8080");
  });

  const cases: Array<[string | undefined, string]> = [
    [undefined, "redis"],
    ...NETWORK_BACKPLANES.map((b): [string, string] => [b, b]),
  ];
  it.each(cases)(
    "BACKPLANE=%s gives every gateway an environment the real schema accepts (%s)",
    (value, expected) => {
      const services = loadCompose(COMPOSE, { ...OPERATOR, BACKPLANE: value }).services;
      const known: readonly string[] = VARIABLES;
      for (const [name, service] of gatewaysOf(services)) {
        const env = envOf(service);
        for (const key of Object.keys(env)) expect(known, `${name}: ${key}`).toContain(key);
        const config = loadConfig(env);
        expect(config.backplane).toBe(expected);
        // Both publish paths are on in compose: the RabbitMQ queue and the Redis stream.
        expect(config.redisUrl).toBe("redis://redis:6379");
        expect(config.amqpUrl).toMatch(/^amqp:\/\/[^@]+@rabbitmq:5672$/);
        expect(config.ingest).toBe(true);
      }
    },
  );

  it("a BACKPLANE the gateways do not know stops them, naming the variable", () => {
    const [, service] = gatewaysOf(
      loadCompose(COMPOSE, { ...OPERATOR, BACKPLANE: "zookeeper" }).services,
    )[0]!;
    expectConfigError(() => loadConfig(envOf(service)), "BACKPLANE");
  });

  it("starts in order on healthchecks: brokers, then gateways (on /readyz), then the balancer", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      expect(service.healthcheck, `${name} has a healthcheck`).toBeDefined();
      const deps = service.depends_on ?? {};
      expect(Array.isArray(deps), `${name}: depends_on with conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries(deps)) {
        expect(condition, `${name} -> ${dep}`).toBe("service_healthy");
        expect(compose.services[dep]?.healthcheck, `${dep} has a healthcheck`).toBeDefined();
      }
    }
    for (const [, service] of gateways) {
      expect(Object.keys(service.depends_on ?? {}).sort()).toEqual(["rabbitmq", "redis"]);
      const port = loadConfig(envOf(service)).port;
      expect(JSON.stringify(service.healthcheck?.test)).toContain(`127.0.0.1:${port}/readyz`);
    }
    expect(Object.keys(compose.services.lb?.depends_on ?? {}).sort()).toEqual(
      gateways.map(([name]) => name),
    );
  });

  it("gives each gateway time to drain: the balancer sees /readyz fail before clients are closed, docker waits for the whole shutdown", () => {
    const cfg = readFileSync(HAPROXY_CFG, "utf8");
    const inter = durationMs(/default-server[^\n]*\binter (\S+)/.exec(cfg)?.[1] ?? "");
    const fall = Number(/default-server[^\n]*\bfall (\d+)/.exec(cfg)?.[1]);
    expect(inter * fall).toBeGreaterThan(0);
    for (const [name, service] of gateways) {
      const config = loadConfig(envOf(service));
      expect(config.shutdownDrainMs, name).toBeGreaterThan(inter * fall);
      expect(durationMs(service.stop_grace_period ?? "10s"), name).toBeGreaterThan(
        config.shutdownTimeoutMs,
      );
      expect(config.shutdownTimeoutMs).toBeGreaterThan(config.shutdownDrainMs);
    }
  });

  it("the balancer's config names exactly these gateways on the port they listen on", () => {
    const cfg = readFileSync(HAPROXY_CFG, "utf8");
    const servers = [...cfg.matchAll(/^\s*server (\S+) "\$\{SWB_GATEWAY_\d-([^}]+)\}"/gm)].map(
      ([, name, address]) => ({ name, address }),
    );
    expect(servers).toEqual(
      gateways.map(([name, service]) => ({
        name,
        address: `${name}:${loadConfig(envOf(service)).port}`,
      })),
    );
    expect(compose.services.lb?.volumes).toContain(
      "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
    );
    expect(cfg).toMatch(/bind "\$\{SWB_LB_BIND-:8080\}"/);
  });

  it("the monitoring profile adds Prometheus scraping every gateway and the balancer, and Grafana with the dashboard", () => {
    const profiled = Object.entries(compose.services)
      .filter(([, s]) => s.profiles?.length)
      .map(([name, s]) => [name, s.profiles]);
    expect(profiled).toEqual([
      ["prometheus", ["monitoring"]],
      ["grafana", ["monitoring"]],
    ]);
    for (const [name, service] of Object.entries(compose.services)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(":")[0]!;
        if (source.startsWith("./"))
          expect(existsSync(join(ROOT, source)), `${name}: ${source}`).toBe(true);
      }
    }

    const prometheus = parse(readFileSync(join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8"));
    const targets = (
      prometheus.scrape_configs as Array<{
        job_name: string;
        static_configs: Array<{ targets: string[] }>;
      }>
    ).flatMap((job) => job.static_configs.flatMap((c) => c.targets));
    for (const [name, service] of gateways) {
      expect(targets).toContain(`${name}:${loadConfig(envOf(service)).port}`);
    }
    expect(targets).toContain("lb:8404");

    const datasources = parse(
      readFileSync(join(ROOT, "deploy/grafana/provisioning/datasources/prometheus.yml"), "utf8"),
    );
    const uid = datasources.datasources[0].uid as string;
    const dashboard = JSON.parse(
      readFileSync(join(ROOT, "deploy/grafana/dashboards/switchboard.json"), "utf8"),
    ) as {
      panels: Array<{
        title: string;
        datasource: { uid: string };
        targets: Array<{ expr: string }>;
      }>;
    };
    expect(dashboard.panels.length).toBeGreaterThan(0);
    for (const panel of dashboard.panels) expect(panel.datasource.uid, panel.title).toBe(uid);
  });

  it("every switchboard metric the Grafana dashboard charts is served by a gateway started with the compose environment", {
    timeout: 60_000,
  }, async () => {
    const [, service] = gateways[0]!;
    const env = envOf(service);
    // The compose broker hosts swapped for this machine's, and this test's own queue and stream.
    const names = uniqueNames();
    await prepareBrokers(names);
    const gateway = await startGateway({
      env: {
        ...env,
        REDIS_URL: await redisUrl(),
        AMQP_URL: await amqpUrl(),
        INGEST_AMQP_QUEUE: names.queue,
        INGEST_REDIS_STREAM: names.stream,
      },
    });
    onTestFinished(() => gateway.stop());
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    const served = new Set([...metrics.matchAll(/^# TYPE (\S+)/gm)].map(([, name]) => name!));
    const dashboard = readFileSync(
      join(ROOT, "deploy/grafana/dashboards/switchboard.json"),
      "utf8",
    );
    const charted = new Set([...dashboard.matchAll(/\bswitchboard_[a-z0-9_]+/g)].map(([m]) => m));
    // `switchboard_backplane_.*_total` is a family: the backplane's own counters.
    charted.delete("switchboard_backplane_");
    expect([...served].some((name) => /^switchboard_backplane_.*_total$/.test(name))).toBe(true);
    for (const name of charted) expect(served, name).toContain(name);
    expect(charted.size).toBeGreaterThan(5);
  });
});
