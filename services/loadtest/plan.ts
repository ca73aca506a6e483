import type { AddressPlan } from "./addresses.js";
import type { ClientSpec } from "./client.js";
import type { LoadtestOptions } from "./options.js";
import { signClientToken } from "./tokens.js";

/** Names and assignments every process of one run derives the same way. */

/** Rooms of one run share a prefix unique to the run, so runs never see each other's traffic. */
export const roomPrefix = (runId: string) => `loadtest:${runId}:`;
export const roomName = (runId: string, r: number) => `${roomPrefix(runId)}${r}`;

/** Indices of the clients worker `index` of `workers` holds (client i goes to worker i mod W). */
export function clientsOf(index: number, workers: number, clients: number): number[] {
  const mine: number[] = [];
  for (let i = index; i < clients; i += workers) mine.push(i);
  return mine;
}

/**
 * Where client `index` connects, from which address, with which token. With --token-secret the
 * token lets it join and publish to this run's rooms only, and lasts through setup, the run and
 * its drain, with a margin.
 */
export async function clientSpec(
  options: LoadtestOptions,
  runId: string,
  addresses: AddressPlan,
  index: number,
): Promise<ClientSpec> {
  let token = options.token;
  if (options.tokenSecret) {
    const runSeconds =
      options.clients / options.rampPerSec + (options.durationMs + options.drainMs) / 1000;
    token = await signClientToken(
      options.tokenSecret,
      {
        sub: `loadtest-${runId}-${index}`,
        rooms: [`${roomPrefix(runId)}*`],
        publish: [`${roomPrefix(runId)}*`],
        issuer: options.tokenIssuer,
        audience: options.tokenAudience,
      },
      runSeconds * 2 + 3600,
    );
  }
  return {
    index,
    url: options.urls[index % options.urls.length] as string,
    localAddress: addresses.addressOf(index),
    token,
  };
}
