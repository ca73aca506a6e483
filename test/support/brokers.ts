import { connect } from "node:net";

/**
 * Finds the brokers integration tests run against, in this order: REDIS_URL / AMQP_URL;
 * a server already listening on the default local port; a container started with
 * testcontainers when a Docker engine is reachable; otherwise a clear error.
 */

const cache = new Map<string, Promise<string>>();

export function redisUrl(): Promise<string> {
  return resolveBroker({
    name: "Redis",
    envName: "REDIS_URL",
    envValue: process.env.REDIS_URL,
    port: 6379,
    localUrl: "redis://127.0.0.1:6379",
    image: "redis:7-alpine",
    toUrl: (host, port) => `redis://${host}:${port}`,
    hint: "start one with: redis-server --daemonize yes --port 6379 --save '' --appendonly no",
  });
}

export function amqpUrl(): Promise<string> {
  return resolveBroker({
    name: "RabbitMQ",
    envName: "AMQP_URL",
    envValue: process.env.AMQP_URL,
    port: 5672,
    localUrl: "amqp://guest:guest@127.0.0.1:5672",
    image: "rabbitmq:4-management-alpine",
    toUrl: (host, port) => `amqp://guest:guest@${host}:${port}`,
    hint: "start one with: rabbitmq-server -detached",
  });
}

interface BrokerSpec {
  name: string;
  envName: string;
  envValue: string | undefined;
  port: number;
  localUrl: string;
  image: string;
  toUrl: (host: string, port: number) => string;
  hint: string;
}

function resolveBroker(spec: BrokerSpec): Promise<string> {
  let found = cache.get(spec.name);
  if (!found) {
    found = find(spec);
    cache.set(spec.name, found);
  }
  return found;
}

async function find(spec: BrokerSpec): Promise<string> {
  if (spec.envValue) return spec.envValue;
  if (await isListening("127.0.0.1", spec.port)) return spec.localUrl;
  try {
    const { GenericContainer } = await import("testcontainers");
    const container = await new GenericContainer(spec.image).withExposedPorts(spec.port).start();
    return spec.toUrl(container.getHost(), container.getMappedPort(spec.port));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(
      `No ${spec.name} for the integration tests: ${spec.envName} is not set, nothing listens on ` +
        `127.0.0.1:${spec.port}, and testcontainers could not start ${spec.image} (${reason}). ` +
        `Set ${spec.envName}, or ${spec.hint}.`,
    );
  }
}

export function isListening(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}
