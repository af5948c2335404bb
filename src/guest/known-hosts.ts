import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { BangerError } from '../rpc/errors.js';

/**
 * banger's own known_hosts (OpenSSH format, in the state dir): guest host
 * keys pinned on first use. A later connection must present the same key;
 * a different one is refused as a possible man in the middle. `vm delete`
 * forgets a VM's entries, so a new VM on the same address pins afresh.
 * The system `ssh` reads the same file (`vm ssh`, `vm exec`).
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

/**
 * Trust on first use: an unknown host is pinned; a known host must match.
 * Returns true when the key is (now) trusted, throws on a mismatch.
 */
export function verifyOrPin(path: string, host: string, presented: HostKey): boolean {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const known = entriesFor(text, host);
  if (known.length === 0) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    appendFileSync(path, `${host} ${presented.type} ${presented.key}\n`, { mode: 0o600 });
    return true;
  }
  if (known.some((k) => k.type === presented.type && k.key === presented.key)) return true;
  throw new BangerError('ERR_HOST_KEY_MISMATCH', `the host key of ${host} changed: possible MITM (man-in-the-middle) attack, refusing to connect`, {
    hint: `if the VM was recreated, remove its entry: ssh-keygen -R ${host} -f ${path}`,
  });
}

/** Forgets every entry for these hosts (on vm delete). */
export function forgetHosts(path: string, hosts: readonly string[]): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => {
      const names = line.trim().split(/\s+/)[0]?.split(',') ?? [];
      return line.trim() !== '' && !names.some((name) => hosts.includes(name));
    });
  writeFileSync(path, kept.length === 0 ? '' : kept.join('\n') + '\n', { mode: 0o600 });
}

export function knownHostEntries(path: string, host: string): HostKey[] {
  return existsSync(path) ? entriesFor(readFileSync(path, 'utf8'), host) : [];
}
