/**
 * The AMQP transport's reconnect path against a fake connection and channel,
 * in the manner of amqp-connection-manager's tests: the fakes record every
 * topology call and publish, and the test decides when a channel or a
 * connection dies, when a publish asks to pause, and when a new connection
 * can be had. The same paths run against a real broker in
 * test/integration/amqp-outage.test.ts.
 */
import { EventEmitter } from "node:events";
import type { ChannelModel, ConsumeMessage } from "amqplib";
import { MessageType } from "socket.io-adapter";
import { afterEach, describe, expect, it, vi } from "vitest";
import { decodeMessage, encodeMessage, type WireMessage } from "../../adapters/amqp/codec.js";
import { resolveTransportOptions } from "../../adapters/amqp/options.js";
import { AmqpTransport } from "../../adapters/amqp/transport.js";
import { recordingLogger } from "../support/amqp-helpers.js";
import { waitFor } from "../support/wait.js";

type Consumer = (msg: ConsumeMessage | null) => void;

class FakeChannel extends EventEmitter {
  readonly calls: string[] = [];
  readonly published: { key: string; message: WireMessage; appId?: string }[] = [];
  /** publish() returns false (asks the caller to wait for 'drain') while true. */
  full = false;
  closed = false;
  consumer: Consumer | undefined;
  queue = "";

  async assertExchange(name: string, type: string): Promise<void> {
    this.calls.push(`assertExchange ${name} ${type}`);
  }
  async assertQueue(name: string): Promise<void> {
    this.queue = name;
    this.calls.push("assertQueue");
  }
  async bindQueue(_queue: string, _exchange: string, key: string): Promise<void> {
    this.calls.push(`bind ${key}`);
  }
  async unbindQueue(_queue: string, _exchange: string, key: string): Promise<void> {
    this.calls.push(`unbind ${key}`);
  }
  async consume(_queue: string, consumer: Consumer): Promise<void> {
    this.consumer = consumer;
    this.calls.push("consume");
  }
  publish(_exchange: string, key: string, content: Buffer, options?: { appId?: string }): boolean {
    if (this.closed) throw new Error("Channel closed");
    this.published.push({ key, message: decodeMessage(content), appId: options?.appId });
    return !this.full;
  }
  async close(): Promise<void> {
    this.die();
  }
  /** The broker (or the network) ends this channel. */
  die(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit("close");
  }
  deliver(message: WireMessage, appId?: string): void {
    this.consumer?.({
      content: encodeMessage(message),
      fields: { routingKey: "k" },
      properties: { appId },
    } as unknown as ConsumeMessage);
  }
}

class FakeConnection extends EventEmitter {
  readonly channels: FakeChannel[] = [];
  closed = false;
  async createChannel(): Promise<FakeChannel> {
    if (this.closed) throw new Error("Connection closed");
    const channel = new FakeChannel();
    this.channels.push(channel);
    return channel;
  }
  async close(): Promise<void> {
    this.die();
  }
  die(): void {
    if (this.closed) return;
    this.closed = true;
    for (const channel of this.channels) channel.die();
    this.emit("close");
  }
  /** The channel of the latest setup that declared the topology and consumes. */
  get topology(): FakeChannel {
    return this.channels.findLast((c) => c.calls.length > 0) as FakeChannel;
  }
  /** The channel the latest setup publishes on (its last channel). */
  get publisher(): FakeChannel {
    return this.channels.at(-1) as FakeChannel;
  }
}

const heartbeat = (uid = "peer"): WireMessage => ({
  uid,
  nsp: "/",
  type: MessageType.HEARTBEAT,
});

function start(
  options: Parameters<typeof resolveTransportOptions>[0] = {},
  consume = true,
): { transport: AmqpTransport; connection: FakeConnection; errors: string[] } {
  const connection = new FakeConnection();
  const errors: string[] = [];
  const transport = new AmqpTransport(
    connection as unknown as ChannelModel,
    resolveTransportOptions({
      exchange: "ex",
      logger: recordingLogger(),
      reconnectMinDelayMs: 10,
      reconnectMaxDelayMs: 40,
      onError: (e) => errors.push(e.code),
      ...options,
    }),
    consume,
  );
  return { transport, connection, errors };
}

describe("amqp transport against a fake channel", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("publishes nothing before setup completed, then exchange, queue, bindings and consumer in that order, and publishes on a channel of its own", async () => {
    const { transport, connection } = start();
    void transport.bind("a./");
    const early = transport.publish("a./", heartbeat());
    expect(connection.channels).toHaveLength(0);
    await early;
    expect(connection.channels).toHaveLength(2);
    const [topology, publisher] = connection.channels as [FakeChannel, FakeChannel];
    expect(topology.calls).toEqual([
      "assertExchange ex topic",
      "assertQueue",
      "bind a./",
      "consume",
    ]);
    expect(publisher.calls).toEqual([]);
    expect(topology.published).toEqual([]);
    expect(publisher.published.map((p) => p.key)).toEqual(["a./"]);
    expect(transport.stats()).toMatchObject({ published: 1, dropped: 0, bindings: 1 });
    await transport.close();
  });

  it("a lost channel: publishes are counted and dropped while down, then a new channel redeclares the queue and every binding and publishing resumes", async () => {
    const { transport, connection } = start();
    await transport.bind("a./");
    await transport.bind("r./.room");
    const reconnected = vi.fn();
    transport.onReconnect(reconnected);
    await waitFor(() => transport.connected, { message: "first setup" });
    const first = connection.topology;
    const firstPublisher = connection.publisher;
    const firstQueue = first.queue;

    first.die();
    expect(transport.connected).toBe(false);
    await transport.publish("a./", heartbeat());
    await transport.publish("a./", heartbeat());
    expect(transport.stats()).toMatchObject({ dropped: 2, bindings: 0 });

    expect(firstPublisher.closed).toBe(true); // a pair: losing one closes the other
    await waitFor(() => transport.connected, { message: "recovered" });
    const second = connection.topology;
    expect(second).not.toBe(first);
    expect(second.calls).toEqual([
      "assertExchange ex topic",
      "assertQueue",
      "bind a./",
      "bind r./.room",
      "consume",
    ]);
    expect(second.queue).not.toBe(firstQueue); // a new exclusive queue name per setup
    expect(reconnected).toHaveBeenCalledTimes(1);
    expect(transport.stats()).toMatchObject({ reconnects: 1, bindings: 2 });

    await transport.publish("a./", heartbeat("after"));
    expect(connection.publisher.published.map((p) => p.message.uid)).toEqual(["after"]);
    expect(firstPublisher.published).toEqual([]);
    await transport.close();
  });

  it("a lost publishing channel: the consumer's channel is closed too and both are rebuilt, bindings included", async () => {
    const { transport, connection } = start();
    await transport.bind("r./.room");
    await waitFor(() => transport.connected, { message: "first setup" });
    const topology = connection.topology;
    connection.publisher.die();
    expect(transport.connected).toBe(false);
    expect(topology.closed).toBe(true);
    await transport.publish("a./", heartbeat());
    expect(transport.stats().dropped).toBe(1);
    await waitFor(() => transport.connected, { message: "recovered" });
    expect(connection.channels).toHaveLength(4);
    expect(connection.topology.calls).toContain("bind r./.room");
    await transport.publish("a./", heartbeat("after"));
    expect(connection.publisher.published.map((p) => p.message.uid)).toEqual(["after"]);
    await transport.close();
    expect(connection.channels.every((c) => c.closed)).toBe(true);
  });

  it("a publisher only (the emitter) declares the exchange and publishes on that one channel", async () => {
    const { transport, connection } = start({}, false);
    await transport.publish("a./", heartbeat("e"));
    expect(connection.channels).toHaveLength(1);
    expect(connection.publisher.calls).toEqual(["assertExchange ex topic"]);
    expect(connection.publisher.published.map((p) => p.message.uid)).toEqual(["e"]);
    await transport.close();
  });

  it("a lost connection: the factory is retried with growing, bounded delays, then the topology is redeclared on the new connection", async () => {
    vi.useFakeTimers();
    const replacement = new FakeConnection();
    const attempts: number[] = [];
    let failures = 4;
    const factory = vi.fn(async () => {
      attempts.push(Date.now());
      if (failures-- > 0) throw new Error("ECONNREFUSED");
      return replacement as unknown as ChannelModel;
    });
    const { transport, connection, errors } = start({
      connectionFactory: factory,
      reconnectMinDelayMs: 100,
      reconnectMaxDelayMs: 400,
    });
    await vi.advanceTimersByTimeAsync(0);
    await transport.bind("r./.room");
    expect(transport.connected).toBe(true);

    const lostAt = Date.now();
    connection.die();
    expect(errors).toEqual(["SWB_ERR_BROKER_CONNECTION"]);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(factory).toHaveBeenCalledTimes(5);
    // Equal jitter: attempt n waits between half and all of min(400, 100 * 2^n).
    const gaps = attempts.map((at, i) => at - (i === 0 ? lostAt : (attempts[i - 1] as number)));
    const bases = [100, 200, 400, 400, 400];
    gaps.forEach((gap, i) => {
      expect(gap).toBeGreaterThanOrEqual((bases[i] as number) / 2);
      expect(gap).toBeLessThanOrEqual(bases[i] as number);
    });
    expect(transport.connected).toBe(true);
    expect(replacement.topology.calls).toContain("bind r./.room");
    expect(transport.stats().reconnects).toBe(1);
    await transport.close();
    expect(replacement.closed).toBe(true); // a connection it opened itself is its to close
    expect(connection.listenerCount("close")).toBe(0);
  });

  it("without a connectionFactory a lost connection is reported as SWB_ERR_BROKER_CONNECTION and the transport stays local-only", async () => {
    const { transport, connection, errors } = start();
    await waitFor(() => transport.connected, { message: "first setup" });
    connection.die();
    await waitFor(() => errors.length >= 2, { message: "loss and local-only reported" });
    expect(new Set(errors)).toEqual(new Set(["SWB_ERR_BROKER_CONNECTION"]));
    await transport.publish("a./", heartbeat());
    expect(transport.stats().dropped).toBe(1);
    await transport.close();
    expect(connection.channels).toHaveLength(2); // never reopened the dead connection
  });

  it("honours 'drain' on the channel it currently publishes on, not on a lost one", async () => {
    const { transport, connection } = start();
    await waitFor(() => transport.connected, { message: "first setup" });
    const first = connection.publisher;
    first.full = true;
    await transport.publish("k", heartbeat("1"));
    const waiting = transport.publish("k", heartbeat("2"));
    expect(first.published.map((p) => p.message.uid)).toEqual(["1"]);
    first.full = false;
    first.emit("drain");
    await waiting;
    expect(first.published.map((p) => p.message.uid)).toEqual(["1", "2"]);

    first.full = true;
    await transport.publish("k", heartbeat("3"));
    const stranded = transport.publish("k", heartbeat("4"));
    first.die(); // the waiting publish is dropped, not carried over
    await stranded;
    expect(transport.stats().dropped).toBe(1);
    await waitFor(() => transport.connected, { message: "recovered" });
    first.emit("drain"); // late 'drain' of the dead channel: ignored
    await transport.publish("k", heartbeat("5"));
    expect(connection.publisher.published.map((p) => p.message.uid)).toEqual(["5"]);
    await transport.close();
  });

  it("bindings end as last asked, one operation at a time, and only wanted keys are redeclared", async () => {
    const { transport, connection } = start();
    await waitFor(() => transport.connected, { message: "first setup" });
    const topology = () => connection.topology.calls.slice(3); // after exchange, queue, consume
    // Undone before its turn came: x never reaches the broker.
    await Promise.all([
      transport.bind("r./.x"),
      transport.unbind("r./.x"),
      transport.bind("r./.y"),
    ]);
    expect(topology()).toEqual(["bind r./.y"]);
    // Unbound and bound again at once: it stays bound, with no unbind in between.
    await Promise.all([transport.unbind("r./.y"), transport.bind("r./.y")]);
    await transport.bind("r./.z");
    await transport.unbind("r./.z");
    expect(topology()).toEqual(["bind r./.y", "bind r./.z", "unbind r./.z"]);
    expect(transport.stats().bindings).toBe(1);
    connection.topology.die();
    await waitFor(() => transport.connected, { message: "recovered" });
    expect(connection.topology.calls.filter((c) => c.startsWith("bind"))).toEqual(["bind r./.y"]);
    await transport.close();
  });

  it("delivers decoded messages to the handlers of their namespace, and counts garbage instead of throwing", async () => {
    const { transport, connection } = start();
    await waitFor(() => transport.connected, { message: "first setup" });
    const got: WireMessage[] = [];
    const remove = transport.addHandler("/", (m) => got.push(m));
    transport.addHandler("/other", () => {
      throw new Error("handler for another namespace must not run");
    });
    connection.topology.deliver(heartbeat("p1"));
    connection.topology.consumer?.({
      content: Buffer.from("garbage"),
      fields: { routingKey: "k" },
      properties: {},
    } as unknown as ConsumeMessage);
    remove();
    connection.topology.deliver(heartbeat("p2"));
    expect(got.map((m) => m.uid)).toEqual(["p1"]);
    expect(transport.stats()).toMatchObject({ received: 3, decodeErrors: 1, handlerErrors: 0 });
    await transport.close();
  });

  it("drops a node's own messages back from the broker undecoded, unless another local adapter serves that namespace", async () => {
    const { transport, connection } = start();
    await waitFor(() => transport.connected, { message: "first setup" });
    const mine: WireMessage[] = [];
    const removeMine = transport.addHandler("/", (m) => mine.push(m), "me");
    await transport.publish("a./", heartbeat("me"));
    expect(connection.publisher.published.map((p) => p.appId)).toEqual(["me"]);

    connection.topology.deliver(heartbeat("me"), "me"); // our own, back
    connection.topology.deliver(heartbeat("peer"), "peer");
    connection.topology.deliver(heartbeat("old"), undefined); // a node that sets no app-id
    expect(mine.map((m) => m.uid)).toEqual(["peer", "old"]);

    // A second server on this transport is another node of the cluster: it needs our messages.
    const theirs: WireMessage[] = [];
    const removeTheirs = transport.addHandler("/", (m) => theirs.push(m), "other");
    connection.topology.deliver(heartbeat("me"), "me");
    expect(theirs.map((m) => m.uid)).toEqual(["me"]);
    removeTheirs();
    removeMine();
    expect(transport.stats()).toMatchObject({ received: 4, decodeErrors: 0 });
    await transport.close();
  });

  it("a publisher only (the emitter) sets no app-id", async () => {
    const { transport, connection } = start({}, false);
    await transport.publish("a./", heartbeat("emitter"));
    expect(connection.publisher.published.map((p) => p.appId)).toEqual([undefined]);
    await transport.close();
  });
});
