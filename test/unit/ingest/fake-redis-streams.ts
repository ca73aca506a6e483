import {
  deadLetterFields,
  type StreamClient,
  type StreamDeadLetter,
  type StreamEntry,
  type StreamGroup,
} from "../../../services/ingest/redis-stream-client.js";

interface Pending {
  consumer: string;
  deliveredAt: number;
  count: number;
}

interface Group {
  lastId: number;
  pending: Map<number, Pending>;
}

interface Stream {
  entries: Map<number, Array<string | Buffer>>;
  groups: Map<string, Group>;
}

/**
 * An in-memory Redis with the stream commands the ingest uses, and their semantics: a consumer
 * group reads new entries once (`>`) and records each in its pending list with a delivery
 * count; re-reading (`0`) and XAUTOCLAIM count as deliveries too; XAUTOCLAIM takes entries idle
 * for long enough and drops deleted ones; XACK removes from the pending list; MULTI is atomic.
 * While `down` is true every command fails, as with a lost connection. Entry ids are `<n>-0`.
 */
export class FakeRedisStreams implements StreamClient {
  readonly streams = new Map<string, Stream>();
  down = false;
  /** Commands sent, by name, for assertions. */
  readonly calls: string[] = [];
  #seq = 0;
  #waiters = new Set<() => void>();
  #closed = false;

  // ---- what a publisher or a test does ----

  xadd(stream: string, ...fields: Array<string | Buffer>): string {
    const id = ++this.#seq;
    this.#stream(stream).entries.set(id, fields);
    for (const wake of this.#waiters) wake();
    return `${id}-0`;
  }

  /** Entries of `stream` as records (a dead-letter stream, say). */
  records(stream: string): Array<Record<string, string>> {
    return [...(this.streams.get(stream)?.entries.values() ?? [])].map((fields) => {
      const record: Record<string, string> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) {
        record[String(fields[i])] = String(fields[i + 1]);
      }
      return record;
    });
  }

  /** The group's pending entries: id -> consumer and delivery count. */
  pending(stream: string, group: string): Map<string, Pending> {
    const found = this.streams.get(stream)?.groups.get(group)?.pending ?? new Map();
    return new Map([...found].map(([id, p]) => [`${id}-0`, { ...p }]));
  }

  deleteGroup(stream: string, group: string): void {
    this.streams.get(stream)?.groups.delete(group);
  }

  // ---- StreamClient ----

  async createGroup({ stream, group }: StreamGroup): Promise<boolean> {
    this.#command("XGROUP");
    const target = this.#stream(stream);
    if (target.groups.has(group)) return false;
    target.groups.set(group, { lastId: 0, pending: new Map() });
    return true;
  }

  async readGroup(
    target: StreamGroup,
    options: { id: ">" | "0"; count: number; blockMs?: number },
  ): Promise<StreamEntry[]> {
    this.#command("XREADGROUP");
    const { stream, group } = this.#group(target);
    if (options.id === "0") {
      const own = [...group.pending]
        .filter(([, p]) => p.consumer === target.consumer)
        .sort(([a], [b]) => a - b)
        .slice(0, options.count);
      return own.map(([id, p]) => {
        p.count += 1;
        p.deliveredAt = Date.now();
        return { id: `${id}-0`, fields: stream.entries.get(id) ?? null };
      });
    }
    let fresh = this.#fresh(stream, group, options.count);
    if (fresh.length === 0 && options.blockMs !== undefined) {
      await this.#block(options.blockMs);
      this.#command("XREADGROUP");
      fresh = this.#fresh(stream, group, options.count);
    }
    for (const id of fresh) {
      group.pending.set(id, { consumer: target.consumer, deliveredAt: Date.now(), count: 1 });
      group.lastId = id;
    }
    return fresh.map((id) => ({ id: `${id}-0`, fields: stream.entries.get(id)! }));
  }

  async autoClaim(
    target: StreamGroup,
    options: { minIdleMs: number; cursor: string; count: number },
  ): Promise<{ cursor: string; entries: StreamEntry[] }> {
    this.#command("XAUTOCLAIM");
    const { stream, group } = this.#group(target);
    const start = Number.parseInt(options.cursor, 10);
    const ids = [...group.pending.keys()].filter((id) => id >= start).sort((a, b) => a - b);
    const entries: StreamEntry[] = [];
    const now = Date.now();
    for (const [index, id] of ids.entries()) {
      if (entries.length === options.count) {
        return { cursor: `${ids[index]}-0`, entries };
      }
      const pending = group.pending.get(id)!;
      if (now - pending.deliveredAt < options.minIdleMs) continue;
      const fields = stream.entries.get(id);
      if (fields === undefined) {
        group.pending.delete(id); // deleted entries leave the pending list
        continue;
      }
      pending.consumer = target.consumer;
      pending.count += 1;
      pending.deliveredAt = now;
      entries.push({ id: `${id}-0`, fields });
    }
    return { cursor: "0-0", entries };
  }

  async deliveryCounts(
    target: StreamGroup,
    range: { first: string; last: string; count: number },
  ): Promise<Map<string, number>> {
    this.#command("XPENDING");
    const { group } = this.#group(target);
    const first = Number.parseInt(range.first, 10);
    const last = Number.parseInt(range.last, 10);
    const rows = [...group.pending]
      .filter(([id, p]) => id >= first && id <= last && p.consumer === target.consumer)
      .sort(([a], [b]) => a - b)
      .slice(0, range.count);
    return new Map(rows.map(([id, p]) => [`${id}-0`, p.count]));
  }

  async settle(
    target: StreamGroup,
    ids: string[],
    deadLetters: StreamDeadLetter[],
    dead: { stream: string; maxLen: number },
  ): Promise<void> {
    if (ids.length === 0) return;
    this.#command("MULTI");
    const { group } = this.#group(target);
    for (const letter of deadLetters) {
      this.xadd(dead.stream, ...deadLetterFields(letter));
    }
    for (const id of ids) group.pending.delete(Number.parseInt(id, 10));
  }

  interrupt(): void {
    this.#closed = true;
    for (const wake of this.#waiters) wake();
  }

  async close(): Promise<void> {
    this.interrupt();
  }

  // ---- internals ----

  #command(name: string): void {
    this.calls.push(name);
    if (this.down) throw new Error("Connection is closed.");
  }

  #stream(name: string): Stream {
    let stream = this.streams.get(name);
    if (stream === undefined) {
      stream = { entries: new Map(), groups: new Map() };
      this.streams.set(name, stream);
    }
    return stream;
  }

  #group(target: StreamGroup): { stream: Stream; group: Group } {
    const stream = this.streams.get(target.stream);
    const group = stream?.groups.get(target.group);
    if (stream === undefined || group === undefined) {
      throw new Error(`NOGROUP No such key '${target.stream}' or consumer group '${target.group}'`);
    }
    return { stream, group };
  }

  #fresh(stream: Stream, group: Group, count: number): number[] {
    return [...stream.entries.keys()]
      .filter((id) => id > group.lastId)
      .sort((a, b) => a - b)
      .slice(0, count);
  }

  /** A blocking read: returns on a new entry, after `ms`, or fails when interrupted. */
  async #block(ms: number): Promise<void> {
    if (this.#closed) throw new Error("Connection is closed.");
    await new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waiters.add(wake);
    });
    if (this.#closed) throw new Error("Connection is closed.");
  }
}
