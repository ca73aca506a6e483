import { readFileSync } from "node:fs";
import {
  createServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import type { Server, Socket } from "socket.io";
import type { Backplane } from "../../adapters/backplane.js";
import { type ConnectionSlots, createAdmission } from "./admission.js";
import { type Authenticator, devAuthenticator } from "./auth.js";
import { trustedProxies } from "./client-address.js";
import { type Config, listenOn } from "./config.js";
import { guardConnectPackets } from "./connection-guard.js";
import { createFastDelivery, registerFastDeliveryMetric } from "./fast-delivery.js";
import { createHandshake } from "./handshake.js";
import { createHttpHandler } from "./http.js";
import type { Logger } from "./logger.js";
import { createGatewayMetrics, type GatewayMetrics } from "./metrics.js";
import { type ClientPublish, createClientProtocol } from "./protocol.js";
import { createSessions } from "./session.js";
import { slimRequests } from "./slim-requests.js";

// CommonJS, so loaded with require: see "What a gateway loads at start" in docs/ARCHITECTURE.md.
const { Server: SocketIoServer } = createRequire(import.meta.url)(
  "socket.io",
) as typeof import("socket.io");

export interface GatewayOptions {
  config: Config;
  backplane: Backplane;
  logger: Logger;
  /** Who clients are and what they may do; default: dev mode (anonymous, every room). */
  authenticator?: Authenticator;
  /** MAX_CONNECTIONS_PER_IP slots kept with other processes (the cluster primary's). */
  connectionSlots?: ConnectionSlots;
}

export type HttpRoute = (req: IncomingMessage, res: ServerResponse) => boolean;

export interface Gateway {
  readonly io: Server;
  readonly httpServer: HttpServer | HttpsServer;
  readonly metrics: GatewayMetrics;
  /** Mounts an extra HTTP route (checked before the built-in ones). */
  addRoute(route: HttpRoute): void;
  /** Registers something to stop when shutdown starts (before clients are let go and the backplane closes). */
  onShutdown(task: () => Promise<void>): void;
  /** Registers a listener for every accepted client `publish` on this gateway (after its emit). */
  onClientPublish(listener: (publish: ClientPublish) => void): void;
  /** Listens on config.port/host; resolves with the bound port. */
  listen(): Promise<number>;
  readiness(): { ready: boolean; reasons: string[] };
  /** Drain, disconnect clients (they reconnect elsewhere), close the backplane. Idempotent. */
  shutdown(): Promise<void>;
}

export function createGateway(options: GatewayOptions): Gateway {
  const { config, backplane, logger } = options;
  const routes: HttpRoute[] = [];
  const shutdownTasks: Array<() => Promise<void>> = [];
  const publishListeners: Array<(publish: ClientPublish) => void> = [];
  const metrics = createGatewayMetrics(
    { gateway: config.gatewayId, backplane: backplane.kind },
    backplane,
  );
  let draining = false;
  let shutdownPromise: Promise<void> | undefined;

  const readiness = () => {
    const reasons: string[] = [];
    if (draining) reasons.push("draining");
    if (!backplane.isConnected()) reasons.push("backplane_disconnected");
    return { ready: reasons.length === 0, reasons };
  };

  const handler = createHttpHandler({
    isReady: readiness,
    extra: routes,
    metricsToken: config.metricsToken,
    metrics: async () => {
      return {
        contentType: metrics.registry.contentType,
        body: await metrics.registry.metrics(),
      };
    },
  });
  const httpServer = createHttpServer(config, handler);

  const admission = createAdmission({
    origins: config.corsOrigins,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    proxies: trustedProxies(config.trustedProxies),
    // New handshakes are refused while draining so that clients go to another gateway.
    isDraining: () => draining,
    logger,
    onRefused: (reason) => metrics.handshakeRefusals.inc({ code: reason }),
    slots: options.connectionSlots,
  });
  const io = new SocketIoServer(httpServer, {
    adapter: backplane.adapter,
    ...backplane.serverOptions,
    // A recovered session passes the handshake again: its token may have expired meanwhile.
    ...(backplane.serverOptions.connectionStateRecovery
      ? {
          connectionStateRecovery: {
            ...backplane.serverOptions.connectionStateRecovery,
            skipMiddlewares: false,
          },
        }
      : {}),
    maxHttpBufferSize: config.maxPayloadBytes,
    cors: { origin: corsOrigin(config.corsOrigins) },
    connectTimeout: config.handshakeTimeoutMs,
    allowRequest: admission.allowRequest,
  });
  // Before slimRequests: it finds each connection's slot by its handshake request.
  admission.track(io);
  metrics.sampleWith(() => ({ connections: io.engine.clientsCount, ready: readiness().ready }));
  const enginePath = io.path().endsWith("/") ? io.path() : `${io.path()}/`;
  admission.guardUpgrades(httpServer, enginePath);
  // Memory: the handshake and upgrade requests are not kept for the life of each connection.
  slimRequests(io, httpServer, enginePath);

  const authenticator = options.authenticator ?? devAuthenticator();
  const namespaces = new Set(config.namespaces);
  const sessions = createSessions(authenticator, logger);
  const handshake = createHandshake({
    authenticator,
    namespaces,
    logger,
    sessions,
    onRefused: (code) => metrics.handshakeRefusals.inc({ code }),
  });
  guardConnectPackets(io, {
    namespaces: namespaces.size,
    logger,
    onClosed: () => metrics.handshakeRefusals.inc({ code: "connect_flood" }),
  });
  // Every namespace admits clients only through the handshake, also one that server-side code
  // creates later (which the handshake then refuses unless it is in NAMESPACES).
  io.use(handshake);
  io.on("new_namespace", (namespace) => namespace.use(handshake));

  // One protocol, one disconnect listener for every socket: nothing is built per connection.
  const attachProtocol = createClientProtocol({
    gatewayId: config.gatewayId,
    maxPublishBytes: config.maxPublishBytes,
    maxRoomsPerSocket: config.maxRoomsPerSocket,
    rateLimitPerSec: config.rateLimitPerSec,
    rateLimitBurst: config.rateLimitBurst,
    maxStrikes: config.maxStrikes,
    logger,
    authorizer: sessions.authorizer,
    refresh: sessions.refresh,
    onPublish: (publish) => {
      for (const listener of publishListeners) listener(publish);
    },
    onEvent: metrics.clientEvent,
  });
  function onDisconnect(this: Socket, reason: string) {
    metrics.disconnects.inc({ reason });
    logger.debug({ socket: this.id, reason }, "client disconnected");
  }
  // Local deliveries to idle WebSocket clients skip engine.io's write buffer (fast-delivery.ts).
  // ...and a client that does not read is disconnected past MAX_CLIENT_BUFFER_BYTES (same seam).
  const fastDelivery = createFastDelivery(io, logger, {
    maxBufferedBytes: config.maxClientBufferBytes,
    onSlowConsumer: (pending, connection) => {
      metrics.slowConsumers.inc();
      logger.info(
        { connection, pendingBytes: pending, limit: config.maxClientBufferBytes },
        "client disconnected: more than MAX_CLIENT_BUFFER_BYTES waiting to be sent (it does not read)",
      );
    },
  });
  registerFastDeliveryMetric(metrics.registry, fastDelivery);
  const onConnection = (socket: Socket) => {
    logger.debug(
      { socket: socket.id, nsp: socket.nsp.name, recovered: socket.recovered },
      "client connected",
    );
    sessions.start(socket);
    attachProtocol(socket);
    socket.on("disconnect", onDisconnect);
  };
  for (const name of namespaces) io.of(name).on("connection", onConnection);

  const shutdown = async () => {
    draining = true;
    logger.info(
      { drainMs: config.shutdownDrainMs, clients: io.engine.clientsCount },
      "shutdown: draining",
    );
    // Services beside Socket.IO (publish consumers) stop taking work first: what they hold is
    // acknowledged or handed back to the broker while the backplane is still up.
    for (const task of shutdownTasks) {
      await task().catch((err: unknown) => logger.error({ err }, "shutdown task failed"));
    }
    if (config.shutdownDrainMs > 0) await delay(config.shutdownDrainMs);
    // io.close() closes transports without a DISCONNECT packet, so clients see "transport close"
    // and reconnect (to another gateway), where a server-side disconnect would stop them.
    await new Promise<void>((resolve) => {
      io.close(() => resolve());
      httpServer.closeAllConnections();
    });
    logger.info("shutdown: clients disconnected");
    await backplane.close();
    logger.info("shutdown: backplane closed");
  };

  return {
    io,
    httpServer,
    metrics,
    addRoute: (route) => routes.push(route),
    onShutdown: (task) => shutdownTasks.push(task),
    onClientPublish: (listener) => publishListeners.push(listener),
    readiness,
    listen: () => listenOn(httpServer, config.host, config.port),
    shutdown: () => {
      shutdownPromise ??= shutdown();
      return shutdownPromise;
    },
  };
}

/**
 * HTTP, or HTTPS with TLS_CERT_FILE/TLS_KEY_FILE (and client certificates with TLS_CA_FILE), with
 * bounds on slow clients: headers and whole requests must arrive in time, idle keep-alive
 * connections close. Checked every second (Node's default is every 30 s).
 */
function createHttpServer(
  config: Config,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): HttpServer | HttpsServer {
  const limits = {
    headersTimeout: config.httpHeadersTimeoutMs,
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    connectionsCheckingInterval: 1000,
  };
  if (config.tlsCertFile === undefined || config.tlsKeyFile === undefined) {
    return createServer(limits, handler);
  }
  const ca = config.tlsCaFile === undefined ? undefined : readFileSync(config.tlsCaFile);
  return createHttpsServer(
    {
      ...limits,
      cert: readFileSync(config.tlsCertFile),
      key: readFileSync(config.tlsKeyFile),
      ...(ca ? { ca, requestCert: true, rejectUnauthorized: true } : {}),
    },
    handler,
  );
}

/**
 * CORS headers for long-polling, whose requests browsers send with CORS: unset or `*` reflects
 * every origin (as documented, with a warning at start), else the list. Without any headers a
 * page of another origin could not poll at all, while its WebSocket would still connect.
 */
function corsOrigin(origins: string[]): string[] | boolean {
  return origins.length === 0 || origins.includes("*") ? true : origins;
}
