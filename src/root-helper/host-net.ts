import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

import { capture } from './command.js';
import { addElement, NFT_FAMILIES, nftScript, removeElements, setElements } from './nft.js';
import { gatewayCidr, nftTableName, refused, tapIndex, type HelperPolicy } from './policy.js';

/**
 * The host changes behind every privileged operation, with arguments already
 * checked by operations.ts. Each is idempotent, so a retried or repeated call
 * (a restarted daemon, a reconcile) converges instead of failing. The helper
 * touches only what it made for this user: a bridge carrying its marker
 * (ifalias `banger:<uid>`) and taps owned by the user; the rules are in
 * nft.ts.
 */

export interface HostNetState {
  /** Taps of the bridge's pattern owned by the caller. */
  taps: string[];
  /** Guest addresses with NAT on. */
  natGuests: string[];
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

function sysfs(name: string, file: string): string | undefined {
  try {
    return readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The uid owning a tun/tap device, or undefined when `name` is not one. */
function tunOwner(name: string): number | undefined {
  const owner = sysfs(name, 'owner');
  return owner === undefined ? undefined : Number(owner);
}

function masterOf(name: string): string | undefined {
  const uevent = sysfs(name, 'master/uevent');
  return uevent === undefined ? undefined : /^INTERFACE=(.*)$/m.exec(uevent)?.[1];
}

/** The marker on a bridge the helper made for this user: it never adopts or deletes an interface it did not make. */
function marker(policy: HelperPolicy): string {
  return `banger:${policy.uid}`;
}

function assertOwnBridge(policy: HelperPolicy): void {
  const isBridge = existsSync(`/sys/class/net/${policy.bridge}/bridge`);
  if (!isBridge || sysfs(policy.bridge, 'ifalias') !== marker(policy)) {
    throw refused(
      `${policy.bridge} exists and is not a bridge banger made for uid ${policy.uid}`,
      'choose another [network] bridge and run `sudo banger system install` again, or remove that interface if it is a leftover',
    );
  }
}

/** Creates the bridge with the gateway address, and (re)writes banger's nftables tables for it. */
export async function ensureBridge(policy: HelperPolicy, dnsPort: number): Promise<void> {
  const bridge = policy.bridge;
  if (!linkExists(bridge)) {
    try {
      await capture('ip', ['link', 'add', bridge, 'type', 'bridge']);
      await capture('ip', ['link', 'set', bridge, 'alias', marker(policy)]);
    } catch (error) {
      if (!linkExists(bridge)) throw error; // lost a race with a concurrent create: checked below
    }
  }
  assertOwnBridge(policy);
  const cidr = gatewayCidr(policy);
  const addresses = await capture('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge]);
  if (!addresses.includes(` ${cidr} `)) await capture('ip', ['addr', 'add', cidr, 'dev', bridge]);
  await capture('ip', ['link', 'set', bridge, 'up']);
  await capture('nft', ['-f', '-'], nftScript(policy, dnsPort));
}

/** Removes the bridge (when it is the one the helper made), the caller's taps of it, and banger's tables for it. */
export async function deleteBridge(policy: HelperPolicy): Promise<void> {
  const table = nftTableName(policy.bridge);
  for (const family of NFT_FAMILIES) {
    if ((await capture('nft', ['list', 'tables', family])).includes(`table ${family} ${table}\n`)) await capture('nft', ['delete', 'table', family, table]);
  }
  for (const tap of listTaps(policy)) await capture('ip', ['link', 'del', tap]);
  if (!linkExists(policy.bridge)) return;
  assertOwnBridge(policy);
  await capture('ip', ['link', 'del', policy.bridge]);
}

/** A tap of the bridge owned by the policy's user, isolated from the other ports, sending nothing until bound to a VM. */
export async function createTap(policy: HelperPolicy, tap: string): Promise<void> {
  assertOwnBridge(policy);
  if (linkExists(tap)) assertOwnTap(policy, tap);
  else await capture('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'user', String(policy.uid)]);
  await addElement(policy, 'bridge', 'ports', [tap], [true]);
  await capture('ip', ['link', 'set', tap, 'master', policy.bridge]);
  await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'on']);
  await capture('ip', ['link', 'set', tap, 'up']);
}

export async function deleteTap(policy: HelperPolicy, tap: string): Promise<void> {
  if (!linkExists(tap)) return;
  assertOwnTap(policy, tap);
  await releaseTap(policy, tap);
  await removeElements(policy, 'bridge', 'ports', [true], ([name]) => name === tap);
  await capture('ip', ['link', 'del', tap]);
}

/** Binds a tap to the VM that uses it (it may send only with that MAC and address) and puts it on its network. */
export async function attachTap(policy: HelperPolicy, tap: string, guestIp: string, mac: string, network: 'isolated' | 'shared'): Promise<void> {
  assertOwnTap(policy, tap);
  if (masterOf(tap) !== policy.bridge) throw refused(`${tap} is not attached to ${policy.bridge}`);
  await removeElements(policy, 'bridge', 'bound', [true, false, false], ([name, , address]) => name === tap || address === guestIp);
  await addElement(policy, 'bridge', 'bound', [tap, mac, guestIp], [true, false, false]);
  if (network === 'shared') {
    await addElement(policy, 'bridge', 'shared', [tap], [true]);
    await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'off']);
  } else {
    await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'on']);
    await removeElements(policy, 'bridge', 'shared', [true], ([name]) => name === tap);
  }
}

/** Unbinds a tap from its VM and isolates it again (back to the pool). */
export async function releaseTap(policy: HelperPolicy, tap: string): Promise<void> {
  assertOwnTap(policy, tap);
  if (masterOf(tap) === policy.bridge) await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'on']);
  await removeElements(policy, 'bridge', 'shared', [true], ([name]) => name === tap);
  await removeElements(policy, 'bridge', 'bound', [true, false, false], ([name]) => name === tap);
}

export async function setNat(policy: HelperPolicy, guestIp: string, enabled: boolean): Promise<void> {
  if (enabled) await addElement(policy, 'ip', 'nat_guests', [guestIp], [false]);
  else await removeElements(policy, 'ip', 'nat_guests', [false], ([address]) => address === guestIp);
}

/** IPv4 forwarding on, which NAT needs. Left on afterwards (banger's forward rules drop what is not NAT'ed guests' traffic). */
export function enableForwarding(): Promise<void> {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
  return Promise.resolve();
}

/** Whether systemd-resolved runs here (its varlink socket exists). */
function resolvedRunning(): boolean {
  return existsSync('/run/systemd/resolve/io.systemd.Resolve');
}

/** Routes the `vm` domain to the daemon's DNS on the bridge (systemd-resolved only). */
export async function routeResolver(policy: HelperPolicy, dnsPort: number): Promise<{ routed: boolean; detail: string }> {
  if (!resolvedRunning()) return { routed: false, detail: 'systemd-resolved is not running: see docs/networking.md for resolving *.vm another way' };
  assertOwnBridge(policy);
  const gateway = gatewayCidr(policy).split('/')[0] ?? '';
  await capture('resolvectl', ['dns', policy.bridge, `${gateway}:${dnsPort}`]);
  await capture('resolvectl', ['domain', policy.bridge, '~vm']);
  await capture('resolvectl', ['default-route', policy.bridge, 'false']);
  return { routed: true, detail: `*.vm resolves through ${gateway}:${dnsPort} on ${policy.bridge}` };
}

export async function revertResolver(policy: HelperPolicy): Promise<void> {
  if (!resolvedRunning() || !linkExists(policy.bridge)) return;
  assertOwnBridge(policy);
  await capture('resolvectl', ['revert', policy.bridge]);
}

/** The caller's taps of the bridge's pattern (by name and tun owner). */
function listTaps(policy: HelperPolicy): string[] {
  return readdirSync('/sys/class/net').filter((name) => tapIndex(policy.bridge, name) !== undefined && tunOwner(name) === policy.uid);
}

export async function state(policy: HelperPolicy): Promise<HostNetState> {
  const table = nftTableName(policy.bridge);
  return {
    taps: listTaps(policy),
    natGuests: (await setElements('ip', table, 'nat_guests')).filter((e): e is string => typeof e === 'string'),
  };
}

/** A tap may be changed only when it is a tun device owned by the caller and (if attached) a port of the caller's bridge. */
function assertOwnTap(policy: HelperPolicy, tap: string): void {
  const owner = tunOwner(tap);
  if (owner !== policy.uid) throw refused(`${tap} is not a tap owned by uid ${policy.uid}`);
  const master = masterOf(tap);
  if (master !== undefined && master !== policy.bridge) throw refused(`${tap} is attached to ${master}, not to ${policy.bridge}`);
}
