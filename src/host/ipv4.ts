/**
 * IPv4 arithmetic for banger's subnet: addresses as unsigned 32-bit numbers.
 * Shared by the daemon (slots) and the root helper (argument validation), so
 * both read a subnet the same way.
 */

export interface Subnet {
  /** Network address as a number. */
  base: number;
  prefix: number;
}

const DOTTED = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses a dotted quad; undefined unless it is exactly four octets 0-255 without leading zeros. */
export function parseIpv4(text: string): number | undefined {
  const match = DOTTED.exec(text);
  if (match === null) return undefined;
  let value = 0;
  for (const part of match.slice(1)) {
    if (part.length > 1 && part.startsWith('0')) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses "a.b.c.d/p" (the address must be the network address); undefined when malformed. */
export function parseSubnet(text: string): Subnet | undefined {
  const [address = '', prefixText = '', extra] = text.split('/');
  if (extra !== undefined || !/^\d{1,2}$/.test(prefixText)) return undefined;
  const base = parseIpv4(address);
  const prefix = Number(prefixText);
  if (base === undefined || prefix > 32) return undefined;
  if (prefix < 32 && base % 2 ** (32 - prefix) !== 0) return undefined;
  return { base, prefix };
}

export function subnetSize(subnet: Subnet): number {
  return 2 ** (32 - subnet.prefix);
}

/** The gateway (host) address: the subnet's first usable address. */
export function gatewayOf(subnet: Subnet): number {
  return subnet.base + 1;
}

/** True when `address` is a guest address of `subnet`: inside it, and not its network, gateway or broadcast address. */
export function isGuestAddress(subnet: Subnet, address: number): boolean {
  return address > subnet.base + 1 && address < subnet.base + subnetSize(subnet) - 1;
}

export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  return a.base < b.base + subnetSize(b) && b.base < a.base + subnetSize(a);
}
