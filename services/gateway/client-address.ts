import { BlockList, isIP } from "node:net";

/**
 * The address a client connects from, for per-IP limits and logs. `X-Forwarded-For` is honoured
 * only when the peer is a trusted proxy (TRUSTED_PROXIES): anyone else could write any address
 * there. The client is then the right-most address of the chain that is not a trusted proxy.
 */

export interface TrustedProxies {
  has(address: string): boolean;
  readonly size: number;
}

/** Whether `entry` is an IP address or a CIDR block (`10.0.0.0/8`, `fd00::/8`). */
export function isAddressOrBlock(entry: string): boolean {
  const [address = "", prefix, extra] = entry.split("/");
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  if (!/^\d{1,3}$/.test(prefix)) return false;
  return Number(prefix) <= (family === 4 ? 32 : 128);
}

export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = new BlockList();
  for (const entry of entries) {
    const [address = "", prefix] = entry.split("/");
    const type = isIP(address) === 6 ? "ipv6" : "ipv4";
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return {
    size: entries.length,
    has: (address) => {
      const plain = unmapped(address);
      const family = isIP(plain);
      return family !== 0 && list.check(plain, family === 6 ? "ipv6" : "ipv4");
    },
  };
}

export function clientAddress(
  peer: string | undefined,
  forwardedFor: string | string[] | undefined,
  proxies: TrustedProxies,
): string {
  const remote = unmapped(peer ?? "unknown");
  if (proxies.size === 0 || forwardedFor === undefined || !proxies.has(remote)) return remote;
  const chain = (Array.isArray(forwardedFor) ? forwardedFor.join(",") : forwardedFor)
    .split(",")
    .map((hop) => hop.trim())
    .filter((hop) => hop.length > 0);
  for (let i = chain.length - 1; i >= 0; i--) {
    const hop = unmapped(chain[i] as string);
    if (isIP(hop) === 0) return remote; // a garbled header: trust nothing in it
    if (!proxies.has(hop)) return hop;
  }
  return remote;
}

/** `::ffff:127.0.0.1` -> `127.0.0.1`: one client, one key, whichever socket family it came by. */
function unmapped(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}
