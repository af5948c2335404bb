import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * An ordinary user for tests that prove banger runs without root: the daemon,
 * QEMU and image builds run as this user, and only the root helper is root.
 * Created on first use (the tests run as root in CI); it gets a home and, with
 * Debian's `uidmap` installed, subordinate ids for rootless image builds.
 */
export interface TestUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The checkout (this file runs from dist/test/helpers/). */
const CHECKOUT = fileURLToPath(new URL('../../../', import.meta.url));

export const TEST_USER_NAME = process.env.BANGER_TEST_USER ?? 'banger-test';

/** Ensures the test user exists (root only) and returns it. */
export function ensureTestUser(name: string = TEST_USER_NAME): TestUser {
  if (process.getuid?.() !== 0) throw new Error('creating a test user needs root');
  if (spawnSync('id', ['-u', name]).status !== 0) {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/sh', name], { stdio: 'ignore' });
  }
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  const home = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).split(':')[5] ?? `/home/${name}`;
  ensureSubordinateIds(name, uid);
  // The user runs banger from this checkout (bin/, dist/, node_modules/), wherever it was cloned.
  grantTraversal(CHECKOUT);
  return { name, uid, gid, home };
}

/** useradd assigns subordinate ids only when uidmap was installed first; add a range if it did not. */
function ensureSubordinateIds(name: string, uid: number): void {
  for (const [file, flag] of [
    ['/etc/subuid', '--add-subuids'],
    ['/etc/subgid', '--add-subgids'],
  ] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // absent: no ranges yet
    }
    if (text.split('\n').some((line) => line.startsWith(`${name}:`) || line.startsWith(`${uid}:`))) continue;
    const start = 1_000_000 + uid * 65_536;
    execFileSync('usermod', [flag, `${start}-${start + 65_535}`, name], { stdio: 'ignore' });
  }
}

/**
 * Lets the test user reach `path` (the checkout: bin/, dist/, node_modules/):
 * adds search permission (o+x, not listing) to each directory above it that
 * lacks it, as a checkout under /root would. Returns what it changed.
 */
export function grantTraversal(path: string): string[] {
  const changed: string[] = [];
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(dir, (mode & 0o7777) | 0o001);
      changed.push(dir);
    }
    if (dir === '/') break;
  }
  const self = statSync(path).mode;
  if ((self & 0o005) !== 0o005) {
    chmodSync(path, (self & 0o7777) | 0o005);
    changed.push(path);
  }
  return changed;
}

/** argv prefix that runs a command as `user` with a clean set of groups. */
export function asUser(user: TestUser): string[] {
  return ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--init-groups', '--'];
}
