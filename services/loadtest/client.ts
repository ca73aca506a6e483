import { Agent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { io, type Socket } from "socket.io-client";
import type { LoadtestOptions } from "./options.js";
import { isLoadtestMessage, LOADTEST_EVENT, now } from "./payload.js";
import { SequenceTracker } from "./sequence.js";
import { errorKind, type IntervalStats } from "./worker-stats.js";

/** How long one connection attempt and one ack may take. */
export const CONNECT_TIMEOUT_MS = 20_000;
export const ACK_TIMEOUT_MS = 10_000;

const agents = new Map<string, Agent>();

/** Long-polling goes through an http.Agent; one per source address, shared by its clients. */
function agentFor(url: string, localAddress: string): Agent {
  const secure = url.startsWith("https:") || url.startsWith("wss:");
  const key = `${secure}:${localAddress}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = secure
      ? new HttpsAgent({ keepAlive: true, localAddress })
      : new Agent({ keepAlive: true, localAddress });
    agents.set(key, agent);
  }
  return agent;
}

export interface ClientSpec {
  index: number;
  url: string;
  localAddress: string | undefined;
  token: string | undefined;
}

/** Socket.IO options for one client: plain Socket.IO, the transport and source address chosen. */
export function socketOptions(options: LoadtestOptions, spec: ClientSpec, reconnection: boolean) {
  const address: Record<string, unknown> = {};
  if (spec.localAddress) {
    if (options.transport === "websocket") address.localAddress = spec.localAddress;
    else address.agent = agentFor(spec.url, spec.localAddress);
  }
  return {
    transports: [options.transport],
    forceNew: true,
    reconnection,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
    timeout: CONNECT_TIMEOUT_MS,
    // Long-polling behind a cookie-sticky balancer (deploy/haproxy) needs the cookie jar.
    withCredentials: options.transport === "polling",
    ...(spec.token === undefined ? {} : { auth: { token: spec.token } }),
    ...address,
  };
}

/** Resolves with the socket once connected, or with the connect error. */
export function connectOnce(socket: Socket): Promise<Error | undefined> {
  return new Promise((resolve) => {
    const onConnect = () => {
      socket.off("connect_error", onError);
      resolve(undefined);
    };
    const onError = (err: Error) => {
      socket.off("connect", onConnect);
      resolve(err);
    };
    socket.once("connect", onConnect);
    socket.once("connect_error", onError);
  });
}

/**
 * One subscribed client of the steady scenario: connects, learns its gateway (`whoami`), joins
 * its room, and classifies every load-test message it receives per stream. After the first
 * connection it reconnects by itself (Socket.IO's backoff) and joins its room again.
 */
export class LoadClient {
  readonly socket: Socket;
  member = false;
  gateway: string | undefined;
  private readonly trackers = new Map<string, SequenceTracker>();
  private closing = false;

  constructor(
    readonly spec: ClientSpec,
    readonly room: string,
    options: LoadtestOptions,
    private readonly stats: IntervalStats,
  ) {
    this.socket = io(spec.url, socketOptions(options, spec, false));
  }

  /** The first connection, whoami and join. Resolves false when the client is not a member. */
  async start(): Promise<boolean> {
    const { socket, stats } = this;
    const startedAt = now();
    stats.connectAttempts += 1;
    const error = await connectOnce(socket);
    if (error) {
      stats.error(errorKind("connect", error));
      socket.disconnect();
      return false;
    }
    stats.connectsOk += 1;
    stats.connectTime.record(now() - startedAt);
    socket.on(LOADTEST_EVENT, (data: unknown) => this.receive(data));
    try {
      const me = (await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("whoami")) as {
        gateway?: unknown;
      };
      this.gateway = typeof me?.gateway === "string" ? me.gateway : "(unknown)";
      stats.landed(this.gateway);
    } catch (err) {
      stats.error(errorKind("whoami", err));
    }
    this.member = await this.join();
    socket.io.reconnection(true);
    socket.on("disconnect", (reason) => {
      if (this.closing) return;
      stats.disconnects += 1;
      stats.error(`disconnect:${reason}`);
    });
    socket.io.on("reconnect", () => {
      stats.reconnects += 1;
      void this.join();
    });
    socket.io.on("reconnect_error", (err) => stats.error(errorKind("reconnect", err)));
    return this.member;
  }

  private async join(): Promise<boolean> {
    try {
      const reply = (await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("join", this.room)) as {
        ok?: unknown;
        error?: unknown;
      };
      if (reply?.ok === true) return true;
      this.stats.error(`join:${String(reply?.error ?? "unexpected reply")}`);
    } catch (err) {
      this.stats.error(errorKind("join", err));
    }
    return false;
  }

  private receive(data: unknown): void {
    const arrivedAt = now();
    if (!isLoadtestMessage(data)) {
      this.stats.error("receive:malformed");
      return;
    }
    let tracker = this.trackers.get(data.k);
    if (!tracker) {
      tracker = new SequenceTracker();
      this.trackers.set(data.k, tracker);
    }
    const arrival = tracker.receive(data.s);
    if (arrival === "duplicate") {
      this.stats.duplicates += 1;
      return;
    }
    if (arrival === "out-of-order") this.stats.outOfOrder += 1;
    this.stats.delivered += 1;
    this.stats.latency.record(arrivedAt - data.t);
  }

  close(): void {
    this.closing = true;
    this.socket.disconnect();
  }
}
