import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io-client";
import { expect, it, onTestFailed } from "vitest";
import {
  type BackplaneDescription,
  type BackplaneEnvironment,
  type ConformanceCase,
  MULTI_PROCESS_CASES,
} from "../support/backplanes.js";
import { request } from "../support/clients.js";
import {
  type ClientOptions,
  type Deployment,
  type HarnessNode,
  startDeployment,
} from "../support/harness/deployment.js";
import { waitFor } from "../support/wait.js";

export const PROCESSES = 3;

/** What a case works with: the shared deployment of one backplane, and small helpers. */
export class SuiteContext {
  private deployment: Deployment | undefined;
  private environment: BackplaneEnvironment | undefined;

  constructor(readonly backplane: BackplaneDescription) {}

  async start(): Promise<void> {
    this.environment = await this.backplane.setup();
    const single = this.backplane.topology === "single";
    this.deployment = await startDeployment({
      topology: this.backplane.topology === "cluster" ? "cluster" : "processes",
      count: single ? 1 : PROCESSES,
      env: this.environment.env,
      name: `${this.backplane.name}-${randomUUID().slice(0, 6)}`,
    });
  }

  async stop(): Promise<void> {
    await this.deployment?.close();
    await this.environment?.stop();
  }

  get env(): Record<string, string> {
    if (!this.environment) throw new Error("the suite has not started");
    return this.environment.env;
  }

  private get started(): Deployment {
    if (!this.deployment) throw new Error("the suite has not started");
    return this.deployment;
  }

  /** The last `lines` lines of every process's output. */
  output(lines: number): string {
    return this.started.output(lines);
  }

  get nodes(): readonly HarnessNode[] {
    return this.started.nodes;
  }

  /** The i-th process; with a single-process backplane every index is that one process. */
  node(i: number): HarnessNode {
    const nodes = this.started.nodes;
    return nodes[i % nodes.length] as HarnessNode;
  }

  /** A client connected to `node(i)`. */
  client(i: number, options?: ClientOptions): Promise<Socket> {
    return this.started.connect(this.node(i), options);
  }

  /** One client per index, each on `node(index)`. */
  clients<const T extends readonly number[]>(
    ...indexes: T
  ): Promise<{ -readonly [K in keyof T]: Socket }> {
    return Promise.all(indexes.map((i) => this.client(i))) as Promise<{
      -readonly [K in keyof T]: Socket;
    }>;
  }

  /** Every `event` a socket receives, as its argument lists (without recovery offsets). */
  received(socket: Socket, event: string): unknown[][] {
    const list: unknown[][] = [];
    const offset = this.backplane.recoveryOffset;
    socket.on(event, (...args: unknown[]) => {
      const last = args.at(-1);
      if (offset && typeof last === "string" && offset.test(last)) args.pop();
      list.push(args);
    });
    return list;
  }

  addNode(): Promise<HarnessNode> {
    return this.started.addNode();
  }

  /**
   * Registers a case, unless the backplane declares it not applicable (with its reason, which the
   * suite's "declares…" test checks and docs/BACKPLANES.md lists): no skipped tests in the suite.
   */
  case(id: ConformanceCase, title: string, fn: () => Promise<void>, timeoutMs?: number): void {
    if (this.backplane.notApplicable[id] !== undefined) return;
    if (this.backplane.topology === "single" && MULTI_PROCESS_CASES.includes(id)) {
      throw new Error(
        `${this.backplane.name} is single-process: declare "${id}" in notApplicable, with why`,
      );
    }
    it(
      title,
      async () => {
        onTestFailed(() => {
          process.stderr.write(`[${this.backplane.name}] ${title}\n${this.deployment?.output()}`);
        });
        await fn();
      },
      timeoutMs,
    );
  }
}

/** A room name no other case uses. */
export const uniqueRoom = (label: string) => `conf:${label}:${randomUUID().slice(0, 8)}`;
export const token = () => randomUUID();

/** A connected client's id. */
export function idOf(socket: Socket): string {
  if (socket.id === undefined) throw new Error("the client is not connected");
  return socket.id;
}

export async function join(socket: Socket, ...rooms: string[]): Promise<void> {
  for (const room of rooms) expect(await request(socket, "join", room)).toEqual({ ok: true });
}

/**
 * Proves absence without sleeping: `from` broadcasts a marker to its whole namespace after the
 * operation under test; once every socket of `sockets` has it, whatever the operation would have
 * sent them (it went first, on the same path) has arrived too.
 */
export async function settle(from: HarnessNode, sockets: Socket[], nsp = "/"): Promise<void> {
  const mark = token();
  const arrived = sockets.map(
    (socket) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the marker did not arrive")), 10_000);
        const onMarker = (value: unknown) => {
          if (value !== mark) return;
          clearTimeout(timer);
          socket.off("conformance:marker", onMarker);
          resolve();
        };
        socket.on("conformance:marker", onMarker);
      }),
  );
  await from.control("emit", { nsp, event: "conformance:marker", args: [mark] });
  await Promise.all(arrived);
}

/** Waits until each list has at least one entry. */
export function arrivedAt(lists: unknown[][][], message = "the broadcast") {
  return waitFor(() => lists.every((list) => list.length > 0), { message });
}

/** Resolves with how `promise` ended, or "hung" when it did not within `ms`. */
export async function outcomeWithin<T>(
  promise: Promise<T>,
  ms: number,
): Promise<
  { status: "fulfilled"; value: T } | { status: "rejected"; error: Error } | { status: "hung" }
> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<{ status: "hung" }>((resolve) => {
    timer = setTimeout(() => resolve({ status: "hung" }), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ status: "fulfilled" as const, value }),
        (error: Error) => ({ status: "rejected" as const, error }),
      ),
      hung,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
