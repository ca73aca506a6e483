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
