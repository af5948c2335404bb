import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { BangerError } from '../rpc/errors.js';

/**
 * banger's own known_hosts (OpenSSH format, in the state dir). banger makes
 * each VM's host key itself (on the host, into the VM's upper disk) and pins
 * it here before the VM first boots, under its address and names: the first
 * connection already verifies, and a guest presenting any other key is
 * refused as a possible man in the middle. `vm delete` (and a failed create's
 * rollback) forgets the entries. The system `ssh` reads the same file.
 */

export interface HostKey {
  /** e.g. ssh-ed25519 */
  type: string;
  /** base64 of the key blob */
  key: string;
}

function entriesFor(text: string, host: string): HostKey[] {
  const keys: HostKey[] = [];
  for (const line of text.split('\n')) {
    const [hosts, type, key] = line.trim().split(/\s+/);
    if (hosts === undefined || type === undefined || key === undefined || hosts.startsWith('#')) continue;
    if (hosts.split(',').includes(host)) keys.push({ type, key });
  }
  return keys;
}

/** Pins `key` (an OpenSSH public key line: "type base64 [comment]") for these hosts, replacing what was pinned for them. */
export function pinHostKey(path: string, hosts: readonly string[], publicKeyLine: string): void {
  const [type, key] = publicKeyLine.trim().split(/\s+/);
  if (type === undefined || key === undefined) throw new Error(`not a public key line: ${publicKeyLine}`);
  forgetHosts(path, hosts);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  appendFileSync(path, `${hosts.join(',')} ${type} ${key}\n`, { mode: 0o600 });
}

/**
 * The presented key must be the one pinned for `host`. Returns true when it
 * is; throws ERR_HOST_KEY_MISMATCH when another key is pinned and
 * ERR_HOST_KEY_UNKNOWN when none is (banger pins every VM's key at create).
 */
export function verifyPinned(path: string, host: string, presented: HostKey): boolean {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const known = entriesFor(text, host);
  if (known.length === 0) {
    throw new BangerError('ERR_HOST_KEY_UNKNOWN', `no host key is pinned for ${host}: refusing to trust whatever answers`, {
      hint: "banger pins each VM's key when it creates the VM; a VM whose entry was removed from banger's known_hosts must be recreated",
    });
  }
  if (known.some((k) => k.type === presented.type && k.key === presented.key)) return true;
  throw new BangerError('ERR_HOST_KEY_MISMATCH', `the host key of ${host} changed: possible MITM (man-in-the-middle) attack, refusing to connect`, {
    hint: `if the VM was recreated, remove its entry: ssh-keygen -R ${host} -f ${path}`,
  });
}

/** Forgets every entry for these hosts (on vm delete). */
export function forgetHosts(path: string, hosts: readonly string[]): void {
  keepEntries(path, (names) => !names.some((name) => hosts.includes(name)));
}

/**
 * Keeps only the entries whose host list `wanted` accepts (at startup: the
 * entries of VMs whose records a crash lost go). Returns how many were dropped.
 */
export function keepEntries(path: string, wanted: (hosts: readonly string[]) => boolean): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '');
  const kept = lines.filter((line) => line.trim().startsWith('#') || wanted(line.trim().split(/\s+/)[0]?.split(',') ?? []));
  if (kept.length === lines.length) return 0;
  // Atomically: a crash mid-write must not lose the pins of the VMs that remain.
  const temp = `${path}.tmp`;
  writeFileSync(temp, kept.length === 0 ? '' : kept.join('\n') + '\n', { mode: 0o600 });
  renameSync(temp, path);
  return lines.length - kept.length;
}

export function knownHostEntries(path: string, host: string): HostKey[] {
  return existsSync(path) ? entriesFor(readFileSync(path, 'utf8'), host) : [];
}
