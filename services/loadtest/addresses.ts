import { readFileSync } from "node:fs";
import type { LoadtestOptions } from "./options.js";

/** Linux's default ephemeral port range (32768-60999), used when /proc cannot be read. */
const DEFAULT_EPHEMERAL_PORTS = 28_232;

/** Ports one source address can use towards one destination, with a margin for TIME_WAIT. */
export function portsPerAddress(): number {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && high > low)
      return Math.floor((high - low) * 0.9);
  } catch {}
  return Math.floor(DEFAULT_EPHEMERAL_PORTS * 0.9);
}

export function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

export interface AddressPlan {
  /** Source address of client i, or undefined to let the OS choose. */
  addressOf(index: number): string | undefined;
  /** Distinct source addresses in use (for the report). */
  addresses: string[];
  /** Said once before the run when the plan cannot cover the connections. */
  warning: string | undefined;
}

/**
 * Which source address each client connects from. One address reaches one destination through
 * at most its ephemeral ports; past that, connections fail with EADDRNOTAVAIL. On loopback every
 * 127.0.0.x is ours, so the generator spreads clients over as many as needed.
 */
export function planAddresses(options: LoadtestOptions, capacity = portsPerAddress()): AddressPlan {
  if (options.localAddresses) {
    const list = options.localAddresses;
    return {
      addressOf: (index) => list[index % list.length],
      addresses: list,
      warning: undefined,
    };
  }
  // Long-polling holds up to two connections per client (the poll and a send).
  const perClient = options.transport === "polling" ? 2 : 1;
  const perUrl = Math.ceil(options.clients / options.urls.length) * perClient;
  if (perUrl <= capacity) return { addressOf: () => undefined, addresses: [], warning: undefined };
  const loopback = options.urls.every((url) => isLoopbackHost(new URL(url).hostname));
  if (!loopback) {
    return {
      addressOf: () => undefined,
      addresses: [],
      warning:
        `${perUrl} connections per URL exceed the ${capacity} ephemeral ports of one source ` +
        "address: give --local-addresses (addresses of this machine) or more --url targets",
    };
  }
  const count = Math.min(254, Math.ceil(perUrl / capacity));
  const addresses = Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`);
  return {
    addressOf: (index) => addresses[Math.floor(index / options.urls.length) % count],
    addresses,
    warning: undefined,
  };
}
