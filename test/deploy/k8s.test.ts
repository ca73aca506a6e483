import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { loadConfig, VARIABLES } from "../../services/gateway/config.js";
import { execForm, parseDockerfile } from "./dockerfile.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const K8S = join(ROOT, "deploy/k8s");

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: a manifest is any Kubernetes object; the schema checks it
  [field: string]: any;
}

function readManifests(path: string): Manifest[] {
  return parseAllDocuments(readFileSync(path, "utf8"))
    .map((doc) => doc.toJS() as Manifest | null)
    .filter((doc): doc is Manifest => doc !== null);
}

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? yamlFiles(join(dir, entry.name)).map((f) => join(entry.name, f))
      : entry.name.endsWith(".yaml")
        ? [entry.name]
        : [],
  );

/** The kubernetes-models class for an apiVersion and kind (core group = `v1`). */
async function modelFor(apiVersion: string, kind: string) {
  const module = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<
    string,
    new (
      data: unknown,
    ) => { validate(): void }
  >;
  const model = module[kind];
  if (!model) throw new Error(`no model for ${apiVersion} ${kind}`);
  return model;
}

async function validate(manifest: Manifest): Promise<void> {
  const Model = await modelFor(manifest.apiVersion, manifest.kind);
  new Model(manifest).validate();
}

const kustomization = readManifests(join(K8S, "kustomization.yaml"))[0]!;
const applied: Manifest[] = (kustomization.resources as string[]).flatMap((file) =>
  readManifests(join(K8S, file)),
);
const find = (kind: string) => applied.find((m) => m.kind === kind)!;
const deployment = find("Deployment");
const pod = deployment.spec.template;
const container = pod.spec.containers[0];

/**
 * The environment a gateway container gets: ConfigMap and Secret (envFrom), then `env`. By
 * default the Secret's CHANGE_ME placeholders are filled in, as the operator must before applying.
 */
function containerEnv({ filled = true } = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom as Array<{
    configMapRef?: { name: string };
    secretRef?: { name: string };
  }>) {
    const ref = source.configMapRef ?? source.secretRef;
    const kind = source.configMapRef ? "ConfigMap" : "Secret";
    const object = applied.find((m) => m.kind === kind && m.metadata.name === ref?.name);
    expect(object, `${kind} ${ref?.name}`).toBeDefined();
    Object.assign(env, object!.data ?? {}, object!.stringData ?? {});
  }
  if (filled) {
    for (const [key, value] of Object.entries(env)) {
      env[key] = value.replaceAll("CHANGE_ME", `operator-secret-${key.toLowerCase()}`);
    }
  }
  for (const { name, valueFrom } of container.env as Array<{ name: string; valueFrom?: unknown }>) {
    // A pod name, as the downward API gives it.
    if (valueFrom) env[name] = "switchboard-gateway-7d9c5b8f6d-x2x4q";
  }
  return env;
}

describe("deploy/k8s against the Kubernetes schemas (kubernetes-models)", () => {
  it("the kustomization lists every manifest of the folder (optional ones live in custom-metrics/)", () => {
    expect(kustomization.apiVersion).toBe("kustomize.config.k8s.io/v1beta1");
    const top = yamlFiles(K8S).filter((f) => !f.includes("/") && f !== "kustomization.yaml");
    expect([...(kustomization.resources as string[])].sort()).toEqual(top.sort());
    expect(kustomization.images[0].name).toBe(container.image);
  });

  it.each(yamlFiles(K8S).filter((f) => f !== "kustomization.yaml" && !f.includes("adapter-rules")))(
    "%s validates against its kind's schema",
    async (file) => {
      const manifests = readManifests(join(K8S, file));
      expect(manifests.length).toBeGreaterThan(0);
      for (const manifest of manifests) await validate(manifest);
    },
  );

  it("the validator does refuse a broken manifest (so a pass above means something)", async () => {
    const broken = structuredClone(deployment);
    broken.spec.replicas = "three";
    await expect(validate(broken)).rejects.toThrow(/replicas/);
    const noPort = structuredClone(deployment);
    delete noPort.spec.template.spec.containers[0].readinessProbe.httpGet.port;
    await expect(validate(noPort)).rejects.toThrow(/port/);
  });

  it("applies a Deployment, Service, Ingress, HPA, PodDisruptionBudget, ConfigMap and Secret", () => {
    expect(applied.map((m) => m.kind).sort()).toEqual(
      [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Namespace",
        "PodDisruptionBudget",
        "Secret",
        "Service",
      ].sort(),
    );
  });

  it("every variable in the ConfigMap and Secret passes the gateway's config schema", () => {
    const env = containerEnv();
    const known: readonly string[] = VARIABLES;
    for (const key of Object.keys(env)) expect(known, key).toContain(key);
    const config = loadConfig(env);
    expect(config.backplane).toBe("redis");
    // Managed brokers: TLS URLs.
    expect(config.redisUrl).toMatch(/^rediss:\/\//);
    expect(config.amqpUrl).toMatch(/^amqps:\/\//);
    expect(config.gatewayId).toMatch(/^switchboard-gateway-/);
  });

  it("a Secret applied with its CHANGE_ME placeholders stops the gateway, naming each variable", () => {
    let problems: string[] = [];
    try {
      loadConfig(containerEnv({ filled: false }));
    } catch (err) {
      problems = ((err as { details?: { problems?: string[] } }).details?.problems ?? []).slice();
    }
    const named = problems.map((line) => line.split(":")[0]);
    expect(named).toContain("invalid environment variable AUTH_JWT_SECRET");
    expect(named).toContain("invalid environment variable PUBLISH_API_KEYS");
  });

  it("probes /readyz for readiness and /healthz for liveness on the port the gateway listens on", () => {
    const config = loadConfig(containerEnv());
    const port = container.ports.find((p: { name: string }) => p.name === "http");
    expect(port.containerPort).toBe(config.port);
    expect(container.readinessProbe.httpGet).toEqual({ path: "/readyz", port: "http" });
    expect(container.livenessProbe.httpGet).toEqual({ path: "/healthz", port: "http" });
    // The image's own entry point and user.
    const image = parseDockerfile(join(ROOT, "deploy/Dockerfile")).stages.at(-1)!;
    const cmd = image.instructions.filter((i) => i.keyword === "CMD").at(-1)!;
    expect(container.args).toEqual(execForm(cmd.args));
    expect(pod.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
  });

  it("gives a pod's shutdown its whole bound: preStop + SHUTDOWN_TIMEOUT_MS fit in terminationGracePeriodSeconds, and the drain outlasts the readiness probe", () => {
    const config = loadConfig(containerEnv());
    const preStop = container.lifecycle.preStop.exec.command as string[];
    expect(preStop[0]).toBe("sleep");
    const preStopMs = Number(preStop[1]) * 1000;
    const graceMs = pod.spec.terminationGracePeriodSeconds * 1000;
    expect(graceMs).toBeGreaterThanOrEqual(preStopMs + config.shutdownTimeoutMs + 5000);
    const probe = container.readinessProbe;
    expect(config.shutdownDrainMs).toBeGreaterThan(
      probe.periodSeconds * probe.failureThreshold * 1000,
    );
    expect(config.shutdownTimeoutMs).toBeGreaterThan(config.shutdownDrainMs);
    // Rolling upgrades never drop capacity.
    expect(deployment.spec.strategy.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
  });

  it("wires Service, Ingress, HPA and PDB to the gateway pods, with cookie affinity and WebSocket timeouts", () => {
    const labels = pod.metadata.labels as Record<string, string>;
    const selects = (selector: Record<string, string>) =>
      Object.entries(selector).every(([k, v]) => labels[k] === v);
    const service = find("Service");
    expect(selects(service.spec.selector)).toBe(true);
    expect(service.spec.ports[0].targetPort).toBe("http");
    expect(selects(deployment.spec.selector.matchLabels)).toBe(true);
    expect(selects(find("PodDisruptionBudget").spec.selector.matchLabels)).toBe(true);

    const ingress = find("Ingress");
    const backend = ingress.spec.rules[0].http.paths[0].backend.service;
    expect(backend.name).toBe(service.metadata.name);
    expect(backend.port.name).toBe(service.spec.ports[0].name);
    const annotations = ingress.metadata.annotations as Record<string, string>;
    expect(annotations["nginx.ingress.kubernetes.io/affinity"]).toBe("cookie");
    expect(annotations["nginx.ingress.kubernetes.io/affinity-mode"]).toBe("persistent");
    // Longer than Socket.IO's ping interval + timeout (25 s + 20 s), so idle sockets stay open.
    for (const key of ["proxy-read-timeout", "proxy-send-timeout"]) {
      expect(Number(annotations[`nginx.ingress.kubernetes.io/${key}`])).toBeGreaterThan(45);
    }

    const hpa = find("HorizontalPodAutoscaler");
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: deployment.apiVersion,
      kind: "Deployment",
      name: deployment.metadata.name,
    });
    expect(hpa.spec.metrics[0].resource.name).toBe("cpu");
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(
      find("PodDisruptionBudget").spec.maxUnavailable + 1,
    );
    const custom = readManifests(join(K8S, "custom-metrics/hpa.yaml"))[0]!;
    expect(custom.spec.metrics.map((m: { type: string }) => m.type)).toEqual(["Resource", "Pods"]);
    expect(custom.spec.metrics[1].pods.metric.name).toBe("switchboard_gateway_connections");
  });
});
