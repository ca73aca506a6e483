import { randomUUID } from "node:crypto";
import type { Socket } from "socket.io-client";
import { whoami } from "./clients.js";
import { type GatewayProcess, startGateway } from "./gateway-process.js";

/** A room name no other test uses. */
export const uniqueRoom = (prefix: string) => `${prefix}:${randomUUID().slice(0, 8)}`;

/** Starts `count` gateways in parallel with `env(i)`; each is stopped when the test file ends. */
export async function startGateways(
  count: number,
  env: (index: number) => Record<string, string>,
  mode: "gateway" | "harness" = "gateway",
): Promise<GatewayProcess[]> {
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, i) =>
      startGateway({ mode, env: { GATEWAY_ID: `gw-${i}`, INGEST: "off", ...env(i) } }),
    ),
  );
  const gateways = started.flatMap((result) =>
    result.status === "fulfilled" ? [result.value] : [],
  );
  const failed = started.find((result) => result.status === "rejected");
  if (failed) {
    await Promise.all(gateways.map((gateway) => gateway.stop()));
    throw failed.reason;
  }
  return gateways;
}

/**
 * Resolves once `socket` has everything its gateway sent it so far: a gateway writes a socket's
 * packets in order, so a broadcast it delivered before answering `whoami` has arrived by then.
 * Call it after a member on the same gateway received a broadcast, to check that a non-member
 * did not.
 */
export async function drained(socket: Socket): Promise<void> {
  await whoami(socket);
}

/** Lines a gateway logged at level error or fatal, or that Node printed as unhandled/uncaught. */
export function errorLines(gateway: GatewayProcess): string[] {
  return gateway
    .output()
    .split("\n")
    .filter((line) => {
      // A log line says its level (a warning may carry an error's stack); other lines are Node's.
      const level = /^\{"level":("?\w+"?)/.exec(line)?.[1];
      if (level !== undefined) return /^("error"|"fatal"|50|60)$/.test(level);
      return /unhandled|uncaught|Error:/i.test(line);
    });
}

export async function readyz(gateway: GatewayProcess): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${gateway.url}/readyz`, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.json() };
}
