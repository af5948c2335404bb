import { capture } from './command.js';
import { gatewayCidr, nftTableName, type HelperPolicy } from './policy.js';

/**
 * banger's nftables tables for one bridge B (T = nftTableName(B)), applied
 * atomically by `nft -f`. Per-VM state lives in sets, so a re-run (every
 * daemon start) replaces the rules without touching it:
 * - `table bridge T`: `ports` (B's taps), `bound` (tap . MAC . address of
 *   each running VM: a tap may send only as its own VM, which makes NAT and
 *   DNS by source address safe), `shared` (taps on the shared network).
 *   Frames between taps are dropped unless both are shared; a tap sends only
 *   IPv4 and ARP; a frame to the host addressed to another guest (routing
 *   around the isolation) is dropped.
 * - `table ip T`: `nat_guests`; guests' DNS to the gateway's port 53 goes to
 *   the daemon's unprivileged port; what crosses B's edge is dropped unless it
 *   is a NAT'ed guest's; the host accepts from B only replies and DNS.
 * - `table ip6 T`: nothing crosses B over IPv6.
 */
export function nftScript(policy: HelperPolicy, dnsPort: number): string {
  const t = nftTableName(policy.bridge);
  const b = JSON.stringify(policy.bridge);
  const gateway = gatewayCidr(policy).split('/')[0] ?? '';
  const subnet = policy.subnet;
  return [
    `add table bridge ${t}`,
    `add set bridge ${t} ports { type ifname; }`,
    `add set bridge ${t} shared { type ifname; }`,
    `add set bridge ${t} bound { type ifname . ether_addr . ipv4_addr; }`,
    `add chain bridge ${t} ingress { type filter hook prerouting priority filter; policy accept; }`,
    `add chain bridge ${t} ports { type filter hook forward priority filter; policy accept; }`,
    `add chain bridge ${t} local { type filter hook input priority filter; policy accept; }`,
    `flush chain bridge ${t} ingress`,
    `flush chain bridge ${t} ports`,
    `flush chain bridge ${t} local`,
    `add rule bridge ${t} ingress iifname @ports ether type != { ip, arp } drop`,
    `add rule bridge ${t} ingress iifname @ports iifname . ether saddr . ip saddr != @bound drop`,
    `add rule bridge ${t} ingress iifname @ports iifname . ether saddr . arp saddr ip != @bound drop`,
    `add rule bridge ${t} ports iifname @shared oifname @shared accept`,
    `add rule bridge ${t} ports iifname @ports drop`,
    `add rule bridge ${t} ports oifname @ports drop`,
    // A frame handed to the host for another guest's address is an attempt to route around the isolation.
    `add rule bridge ${t} local iifname @ports ip daddr ${subnet} ip daddr != ${gateway} drop`,
    `add table ip ${t}`,
    `add set ip ${t} nat_guests { type ipv4_addr; }`,
    `add chain ip ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ip ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ip ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `add chain ip ${t} input { type filter hook input priority filter; policy accept; }`,
    `flush chain ip ${t} prerouting`,
    `flush chain ip ${t} postrouting`,
    `flush chain ip ${t} forward`,
    `flush chain ip ${t} input`,
    `add rule ip ${t} prerouting iifname ${b} ip daddr ${gateway} udp dport 53 redirect to :${dnsPort}`,
    `add rule ip ${t} postrouting ip saddr @nat_guests oifname != ${b} masquerade`,
    // Only what crosses the bridge's edge: with br_netfilter loaded, frames bridged between two
    // ports pass here too (in and out both B), and the bridge table has already judged those.
    `add rule ip ${t} forward iifname ${b} oifname != ${b} ip saddr @nat_guests accept`,
    `add rule ip ${t} forward oifname ${b} iifname != ${b} ip daddr @nat_guests ct state established,related accept`,
    `add rule ip ${t} forward iifname ${b} oifname != ${b} drop`,
    `add rule ip ${t} forward oifname ${b} iifname != ${b} drop`,
    `add rule ip ${t} input iifname ${b} ct state established,related accept`,
    `add rule ip ${t} input iifname ${b} ip daddr ${gateway} udp dport ${dnsPort} accept`,
    `add rule ip ${t} input iifname ${b} drop`,
    `add table ip6 ${t}`,
    `add chain ip6 ${t} forward { type filter hook forward priority filter; policy accept; }`,
    `flush chain ip6 ${t} forward`,
    `add rule ip6 ${t} forward iifname ${b} oifname != ${b} drop`,
    `add rule ip6 ${t} forward oifname ${b} iifname != ${b} drop`,
    '',
  ].join('\n');
}

export const NFT_FAMILIES = ['bridge', 'ip', 'ip6'] as const;

/** Elements of a set, as nft prints them in JSON: strings, or for concatenations the list of their parts. */
export async function setElements(family: string, table: string, set: string): Promise<(string | string[])[]> {
  let output: string;
  try {
    output = await capture('nft', ['-j', 'list', 'set', family, table, set]);
  } catch {
    return []; // no table yet: nothing in it
  }
  const parsed = JSON.parse(output) as { nftables: { set?: { elem?: unknown[] } }[] };
  const elements = parsed.nftables.find((entry) => entry.set !== undefined)?.set?.elem ?? [];
  const result: (string | string[])[] = [];
  for (const element of elements) {
    if (typeof element === 'string') result.push(element);
    const concat = (element as { concat?: unknown[] } | null)?.concat;
    if (Array.isArray(concat)) result.push(concat.map(String));
  }
  return result;
}

/** nft's element syntax for checked values: names quoted, addresses and MACs as they are. */
function elementText(parts: readonly string[], quoted: readonly boolean[]): string {
  return parts.map((part, i) => (quoted[i] === true ? JSON.stringify(part) : part)).join(' . ');
}

export async function addElement(policy: HelperPolicy, family: string, set: string, parts: readonly string[], quoted: readonly boolean[]): Promise<void> {
  await capture('nft', ['add', 'element', family, nftTableName(policy.bridge), set, `{ ${elementText(parts, quoted)} }`]);
}

/** Removes the elements for which `match` holds; absent ones are fine (idempotent). */
export async function removeElements(
  policy: HelperPolicy,
  family: string,
  set: string,
  quoted: readonly boolean[],
  match: (parts: readonly string[]) => boolean,
): Promise<void> {
  const table = nftTableName(policy.bridge);
  for (const element of await setElements(family, table, set)) {
    const parts = typeof element === 'string' ? [element] : element;
    if (match(parts)) await capture('nft', ['delete', 'element', family, table, set, `{ ${elementText(parts, quoted)} }`]);
  }
}
