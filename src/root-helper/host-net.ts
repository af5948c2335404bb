import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';

import { BangerError } from '../rpc/errors.js';
import { gatewayCidr, nftTableName, refused, tapIndex, tapPrefix, type HelperPolicy } from './policy.js';

/**
 * The host changes behind every privileged operation, with arguments already
 * validated by operations.ts. Each function is idempotent, so a retried or
 * repeated call (a restarted daemon, a reconcile) converges instead of failing.
 *
 * Layout, per bridge B (T = nftTableName(B)):
 * - bridge B carrying the subnet's gateway address;
 * - taps B[:8]p<n>, owned by the user (QEMU opens them without root), ports
 *   of B with `isolated on` unless the VM joined the shared network;
 * - `table ip T`: set `nat_guests` (guests with NAT on) used by masquerade and
 *   forward rules; a forward policy that drops everything else crossing B
 *   (NAT off = nothing beyond the host); DNS to the gateway's port 53
 *   redirected to the daemon's unprivileged DNS port;
 * - `table bridge T`: set `shared` (taps on the shared network); frames
 *   between B's taps are dropped unless both are in it.
 */

export interface HostNetState {
  /** Taps of the bridge's pattern that exist, with their owner uid (-1 when not a tun device). */
  taps: { name: string; owner: number; shared: boolean }[];
  /** Guest addresses with NAT on. */
  natGuests: string[];
}

/** Runs a command and returns its stdout; a failure is ERR_HOST_COMMAND_FAILED with stderr's tail. */
export function capture(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => {
      reject(new BangerError('ERR_HOST_TOOL_MISSING', `cannot run ${command}: ${error.message}`, { cause: error, hint: 'run `banger doctor`' }));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new BangerError(
            'ERR_HOST_COMMAND_FAILED',
            `${command} ${args.join(' ')} failed (exit ${code ?? '?'}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
          ),
        );
    });
    if (input !== undefined) {
      // A command that fails before reading its input closes the pipe: its exit status tells why.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
  });
}

function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** The uid owning a tun/tap device, or undefined when `name` is not one. */
function tunOwner(name: string): number | undefined {
  try {
    return Number(readFileSync(`/sys/class/net/${name}/owner`, 'utf8').trim());
  } catch {
    return undefined;
  }
}

function masterOf(name: string): string | undefined {
  try {
    const target = readFileSync(`/sys/class/net/${name}/master/uevent`, 'utf8');
    return /^INTERFACE=(.*)$/m.exec(target)?.[1];
  } catch {
    return undefined;
  }
}

/** Creates the bridge with the gateway address, and (re)writes banger's nftables tables for it. */
export async function ensureBridge(policy: HelperPolicy, dnsPort: number): Promise<void> {
  const bridge = policy.bridge;
  if (!linkExists(bridge)) {
    try {
      await capture('ip', ['link', 'add', bridge, 'type', 'bridge']);
    } catch (error) {
      if (!linkExists(bridge)) throw error; // lost a race with a concurrent create: fine
    }
  }
  const cidr = gatewayCidr(policy);
  const addresses = await capture('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge]);
  if (!addresses.includes(` ${cidr} `)) await capture('ip', ['addr', 'add', cidr, 'dev', bridge]);
  await capture('ip', ['link', 'set', bridge, 'up']);
  await capture('nft', ['-f', '-'], nftScript(policy, dnsPort));
}

/**
 * The whole ruleset for one bridge, applied atomically by `nft -f`. Sets are
 * only added (their elements, the per-VM state, survive a re-run); chains are
 * flushed and refilled, so a re-run replaces the rules instead of duplicating them.
 */
export function nftScript(policy: HelperPolicy, dnsPort: number): string {
  const table = nftTableName(policy.bridge);
  const bridge = JSON.stringify(policy.bridge);
  const gateway = gatewayCidr(policy).split('/')[0] ?? '';
  const taps = JSON.stringify(`${tapPrefix(policy.bridge)}*`);
  return [
    `add table ip ${table}`,
    `add set ip ${table} nat_guests { type ipv4_addr; }`,
    `add chain ip ${table} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ip ${table} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ip ${table} forward { type filter hook forward priority filter; policy accept; }`,
    `flush chain ip ${table} prerouting`,
    `flush chain ip ${table} postrouting`,
    `flush chain ip ${table} forward`,
    `add rule ip ${table} prerouting iifname ${bridge} ip daddr ${gateway} udp dport 53 redirect to :${dnsPort}`,
    `add rule ip ${table} postrouting ip saddr @nat_guests oifname != ${bridge} masquerade`,
    `add rule ip ${table} forward iifname ${bridge} oifname != ${bridge} ip saddr @nat_guests accept`,
    `add rule ip ${table} forward oifname ${bridge} iifname != ${bridge} ip daddr @nat_guests ct state established,related accept`,
    `add rule ip ${table} forward iifname ${bridge} oifname != ${bridge} drop`,
    `add rule ip ${table} forward oifname ${bridge} iifname != ${bridge} drop`,
    `add table bridge ${table}`,
    `add set bridge ${table} shared { type ifname; }`,
    `add chain bridge ${table} ports { type filter hook forward priority filter; policy accept; }`,
    `flush chain bridge ${table} ports`,
    `add rule bridge ${table} ports iifname @shared oifname @shared accept`,
    `add rule bridge ${table} ports iifname ${taps} drop`,
    `add rule bridge ${table} ports oifname ${taps} drop`,
    '',
  ].join('\n');
}

/** Removes the bridge, the caller's taps of it, and banger's tables for it. */
export async function deleteBridge(policy: HelperPolicy): Promise<void> {
  const table = nftTableName(policy.bridge);
  for (const family of ['ip', 'bridge']) {
    if ((await capture('nft', ['list', 'tables', family])).includes(`table ${family} ${table}\n`)) await capture('nft', ['delete', 'table', family, table]);
  }
  for (const tap of listTaps(policy)) if (tunOwner(tap) === policy.uid) await capture('ip', ['link', 'del', tap]);
  if (linkExists(policy.bridge)) await capture('ip', ['link', 'del', policy.bridge]);
}

/** A tap of the bridge owned by the policy's user, isolated from the other ports. */
export async function createTap(policy: HelperPolicy, tap: string): Promise<void> {
  if (linkExists(tap)) {
    assertOwnTap(policy, tap);
  } else {
    await capture('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap', 'user', String(policy.uid)]);
  }
  await capture('ip', ['link', 'set', tap, 'master', policy.bridge]);
  await setTapNetwork(policy, tap, 'isolated');
  await capture('ip', ['link', 'set', tap, 'up']);
}

export async function deleteTap(policy: HelperPolicy, tap: string): Promise<void> {
  if (!linkExists(tap)) return;
  assertOwnTap(policy, tap);
  await removeFromSet(policy, 'bridge', 'shared', JSON.stringify(tap));
  await capture('ip', ['link', 'del', tap]);
}

export async function setTapNetwork(policy: HelperPolicy, tap: string, network: 'isolated' | 'shared'): Promise<void> {
  assertOwnTap(policy, tap);
  const table = nftTableName(policy.bridge);
  if (network === 'shared') {
    await capture('nft', ['add', 'element', 'bridge', table, 'shared', `{ ${JSON.stringify(tap)} }`]);
    await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'off']);
  } else {
    await capture('bridge', ['link', 'set', 'dev', tap, 'isolated', 'on']);
    await removeFromSet(policy, 'bridge', 'shared', JSON.stringify(tap));
  }
}

export async function setNat(policy: HelperPolicy, guestIp: string, enabled: boolean): Promise<void> {
  const table = nftTableName(policy.bridge);
  if (enabled) await capture('nft', ['add', 'element', 'ip', table, 'nat_guests', `{ ${guestIp} }`]);
  else await removeFromSet(policy, 'ip', 'nat_guests', guestIp);
}

/** IPv4 forwarding on, which NAT needs. Left on afterwards (banger's forward rules drop what is not NAT'ed guests' traffic). */
export function enableForwarding(): Promise<void> {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1\n');
  return Promise.resolve();
}

/** Whether systemd-resolved runs here (its runtime dir exists) and resolvectl is available. */
function resolvedRunning(): boolean {
  return existsSync('/run/systemd/resolve/io.systemd.Resolve');
}

/** Routes the `vm` domain to the daemon's DNS on the bridge (systemd-resolved only). */
export async function routeResolver(policy: HelperPolicy, dnsPort: number): Promise<{ routed: boolean; detail: string }> {
  if (!resolvedRunning()) return { routed: false, detail: 'systemd-resolved is not running: see docs/networking.md for resolving *.vm another way' };
  const gateway = gatewayCidr(policy).split('/')[0] ?? '';
  await capture('resolvectl', ['dns', policy.bridge, `${gateway}:${dnsPort}`]);
  await capture('resolvectl', ['domain', policy.bridge, '~vm']);
  return { routed: true, detail: `*.vm resolves through ${gateway}:${dnsPort} on ${policy.bridge}` };
}

export async function revertResolver(policy: HelperPolicy): Promise<void> {
  if (resolvedRunning() && linkExists(policy.bridge)) await capture('resolvectl', ['revert', policy.bridge]);
}

function listTaps(policy: HelperPolicy): string[] {
  return readdirSync('/sys/class/net').filter((name) => tapIndex(policy.bridge, name) !== undefined);
}

export async function state(policy: HelperPolicy): Promise<HostNetState> {
  const table = nftTableName(policy.bridge);
  const shared = await setElements('bridge', table, 'shared');
  return {
    taps: listTaps(policy).map((name) => ({ name, owner: tunOwner(name) ?? -1, shared: shared.includes(name) })),
    natGuests: await setElements('ip', table, 'nat_guests'),
  };
}

/** A tap may be changed only when it is a tun device owned by the caller and (if attached) a port of the caller's bridge. */
function assertOwnTap(policy: HelperPolicy, tap: string): void {
  const owner = tunOwner(tap);
  if (owner !== policy.uid) throw refused(`${tap} is not a tap owned by uid ${policy.uid}`);
  const master = masterOf(tap);
  if (master !== undefined && master !== policy.bridge) throw refused(`${tap} is attached to ${master}, not to ${policy.bridge}`);
}

async function setElements(family: string, table: string, set: string): Promise<string[]> {
  let output: string;
  try {
    output = await capture('nft', ['-j', 'list', 'set', family, table, set]);
  } catch {
    return []; // no table yet: nothing in it
  }
  const parsed = JSON.parse(output) as { nftables: { set?: { elem?: unknown[] } }[] };
  const elements = parsed.nftables.find((entry) => entry.set !== undefined)?.set?.elem ?? [];
  return elements.filter((e): e is string => typeof e === 'string');
}

async function removeFromSet(policy: HelperPolicy, family: string, set: string, element: string): Promise<void> {
  const table = nftTableName(policy.bridge);
  const bare = element.replace(/^"|"$/g, '');
  if (!(await setElements(family, table, set)).includes(bare)) return;
  await capture('nft', ['delete', 'element', family, table, set, `{ ${element} }`]);
}
