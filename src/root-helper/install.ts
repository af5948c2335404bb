import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { acceptsConnections } from '../host/unix-socket.js';
import { BangerError } from '../rpc/errors.js';
import { HELPER_CONFIG, HELPER_SOCKET_DIR, helperSocketPath } from './protocol.js';
import { checkPolicies, loadHelperConfig, type HelperConfig } from './server.js';
import type { HelperPolicy } from './policy.js';

/**
 * `sudo banger system install`: puts the root helper in place for one user.
 * The helper's code is copied to a root-owned directory (the service never
 * runs code a user can edit), the user's policy is added to the helper's
 * root-owned config, /dev/net/tun is opened to users (QEMU opens the user's
 * own taps), the user gets subordinate ids for rootless image builds, and
 * the service is (re)started: by systemd where it is PID 1, otherwise as a
 * detached process (documented in docs/security.md).
 */

export const INSTALL_DIR = '/usr/local/lib/banger';
export const HELPER_BUNDLE = 'banger-root.cjs';
export const SYSTEMD_UNIT = '/etc/systemd/system/banger-root.service';
export const HELPER_LOG = '/var/log/banger-root.log';
const PID_FILE = join(HELPER_SOCKET_DIR, 'helper.pid');
const UDEV_RULE = '/etc/udev/rules.d/60-banger-tun.rules';
const TUN = '/dev/net/tun';

export interface InstallPlan {
  policy: HelperPolicy;
  user: string;
  /** dist/root-helper.cjs and dist/build-info.json of the running banger. */
  bundle: string;
  buildInfo: string;
  node: string;
}

export interface InstallReport {
  steps: string[];
  socket: string;
  service: 'systemd' | 'process';
}

/**
 * Writes a root-owned file atomically. Its directory must be root's, not a
 * symlink, and writable by no one else (else whoever could write there would
 * choose what root runs); the temporary file is created exclusively.
 */
function atomicWrite(path: string, data: string | Buffer, mode: number): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  assertRootOwnedDir(dir);
  const temp = `${path}.tmp-${process.pid}`;
  rmSync(temp, { force: true });
  writeFileSync(temp, data, { mode, flag: 'wx' });
  chmodSync(temp, mode);
  renameSync(temp, path);
}

export function assertRootOwnedDir(dir: string): void {
  const stat = lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
    throw new BangerError('ERR_HELPER_REFUSED', `${dir} must be a directory owned by root and writable only by root`, {
      hint: `fix its ownership (chown root:root ${dir}; chmod go-w ${dir}) or remove it, then install again`,
    });
  }
}

/** The node that will run as root must be root's and writable only by root, as must every directory above it. */
export function assertRootOwnedExecutable(path: string): void {
  let current = realpathSync(path);
  for (;;) {
    const stat = statSync(current);
    if (stat.uid !== 0 || (stat.mode & 0o022) !== 0) {
      throw new BangerError('ERR_HELPER_REFUSED', `the root helper would run ${path}, but ${current} is not root's alone`, {
        hint: 'install Node.js system-wide (e.g. the distribution package or NodeSource, in /usr/bin) and run the install with that node',
      });
    }
    if (current === '/') return;
    current = dirname(current);
  }
}

function systemdRuns(): boolean {
  return existsSync('/run/systemd/system');
}

export async function installHelper(plan: InstallPlan): Promise<InstallReport> {
  if (process.getuid?.() !== 0) throw new BangerError('ERR_NEEDS_ROOT', 'installing the root helper needs root', { hint: 'run it with sudo' });
  assertRootOwnedExecutable(plan.node);
  const steps: string[] = [];
  const config: HelperConfig = existsSync(HELPER_CONFIG) ? loadHelperConfig(HELPER_CONFIG) : { users: [] };
  const users = [...config.users.filter((u) => u.uid !== plan.policy.uid), plan.policy];
  checkPolicies(users);

  atomicWrite(join(INSTALL_DIR, HELPER_BUNDLE), readFileSync(plan.bundle), 0o644);
  atomicWrite(join(INSTALL_DIR, 'build-info.json'), readFileSync(plan.buildInfo), 0o644);
  steps.push(`helper code copied to ${INSTALL_DIR} (root-owned)`);
  atomicWrite(HELPER_CONFIG, JSON.stringify({ users }, null, 2) + '\n', 0o644);
  steps.push(`${plan.user} (uid ${plan.policy.uid}) may use bridge ${plan.policy.bridge} and ${plan.policy.subnet} (${HELPER_CONFIG})`);

  if ((statSync(TUN).mode & 0o666) !== 0o666) {
    chmodSync(TUN, 0o666);
    atomicWrite(UDEV_RULE, 'KERNEL=="tun", MODE="0666"\n', 0o644);
    steps.push(`${TUN} opened to users (0666, as Debian ships it) so QEMU can open the taps it owns`);
  }
  steps.push(...ensureSubordinateIds(plan.user));

  const service = await startService(plan.node);
  steps.push(
    service === 'systemd' ? 'service banger-root enabled and (re)started by systemd' : `helper started in the background (no systemd here; log: ${HELPER_LOG})`,
  );
  const socket = helperSocketPath(plan.policy.uid);
  await waitForSocket(socket);
  return { steps, socket, service };
}

/** Removes a user's policy; with no user left, stops the helper and removes its files. */
export async function uninstallHelper(uid: number, node: string): Promise<string[]> {
  if (process.getuid?.() !== 0) throw new BangerError('ERR_NEEDS_ROOT', 'removing the root helper needs root', { hint: 'run it with sudo' });
  const config: HelperConfig = existsSync(HELPER_CONFIG) ? loadHelperConfig(HELPER_CONFIG) : { users: [] };
  const users = config.users.filter((u) => u.uid !== uid);
  if (users.length > 0) {
    atomicWrite(HELPER_CONFIG, JSON.stringify({ users }, null, 2) + '\n', 0o644);
    await startService(node);
    return [`uid ${uid} removed from ${HELPER_CONFIG}; the helper keeps serving ${users.length} other user(s)`];
  }
  stopService();
  for (const path of [SYSTEMD_UNIT, HELPER_CONFIG, join(INSTALL_DIR, HELPER_BUNDLE), join(INSTALL_DIR, 'build-info.json')]) rmSync(path, { force: true });
  rmSync(UDEV_RULE, { force: true }); // /dev/net/tun keeps its mode until reboot; Debian's own default is 0666 anyway
  for (const dir of [INSTALL_DIR, dirname(HELPER_CONFIG), HELPER_SOCKET_DIR]) {
    try {
      rmdirSync(dir); // only when empty: anything else there is not ours
    } catch {
      // not empty, or already gone
    }
  }
  if (systemdRuns()) spawnSync('systemctl', ['daemon-reload']);
  return ['helper stopped; its service, config and code removed'];
}

function unit(node: string): string {
  return [
    '[Unit]',
    'Description=banger root helper (bridge, taps, nftables and resolver routing for banger VMs)',
    'After=network.target',
    '',
    '[Service]',
    `ExecStart=${node} ${join(INSTALL_DIR, HELPER_BUNDLE)} serve`,
    'Restart=on-failure',
    'ProtectHome=true',
    'PrivateTmp=true',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

async function startService(node: string): Promise<'systemd' | 'process'> {
  atomicWrite(SYSTEMD_UNIT, unit(node), 0o644);
  if (systemdRuns()) {
    for (const args of [['daemon-reload'], ['enable', 'banger-root.service'], ['restart', 'banger-root.service']]) {
      const result = spawnSync('systemctl', args, { encoding: 'utf8' });
      if (result.status !== 0) throw new BangerError('ERR_HOST_COMMAND_FAILED', `systemctl ${args.join(' ')} failed: ${result.stderr.trim()}`);
    }
    return 'systemd';
  }
  stopService();
  mkdirSync(HELPER_SOCKET_DIR, { recursive: true, mode: 0o755 });
  const child = spawn(node, [join(INSTALL_DIR, HELPER_BUNDLE), 'serve', '--log', HELPER_LOG], { detached: true, stdio: 'ignore' });
  child.unref();
  if (child.pid === undefined) throw new BangerError('ERR_HOST_COMMAND_FAILED', 'could not start the root helper');
  writeFileSync(PID_FILE, `${child.pid}\n`);
  await Promise.resolve();
  return 'process';
}

function stopService(): void {
  if (systemdRuns() && existsSync(SYSTEMD_UNIT)) {
    spawnSync('systemctl', ['disable', '--now', 'banger-root.service']);
    return;
  }
  if (!existsSync(PID_FILE)) return;
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  rmSync(PID_FILE, { force: true });
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    // Only a helper: root's, its command line naming the installed bundle.
    const isRootProcess = /^Uid:\s+0\s/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (isRootProcess && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(join(INSTALL_DIR, HELPER_BUNDLE))) process.kill(pid, 'SIGTERM');
  } catch {
    // already gone
  }
  for (let i = 0; i < 50 && existsSync(`/proc/${pid}`); i++) spawnSync('sleep', ['0.1']);
}

/** Subordinate uid/gid ranges for rootless image builds (mmdebstrap --mode=unshare), added when the user has none. */
function ensureSubordinateIds(user: string): string[] {
  const steps: string[] = [];
  for (const [file, flag] of [
    ['/etc/subuid', '--add-subuids'],
    ['/etc/subgid', '--add-subgids'],
  ] as const) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    if (text.split('\n').some((line) => line.split(':')[0] === user)) continue;
    const used = text
      .split('\n')
      .map((line) => line.split(':'))
      .filter((parts) => parts.length === 3)
      .map(([, start, count]) => Number(start) + Number(count));
    const start = Math.max(100_000, ...used);
    const result = spawnSync('usermod', [flag, `${start}-${start + 65_535}`, user], { encoding: 'utf8' });
    if (result.status !== 0) throw new BangerError('ERR_HOST_COMMAND_FAILED', `usermod ${flag} failed: ${result.stderr.trim()}`);
    steps.push(`${user} got subordinate ids ${start}-${start + 65_535} in ${file} (rootless image builds)`);
  }
  return steps;
}

async function waitForSocket(path: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await acceptsConnections(path)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new BangerError('ERR_HELPER_UNREACHABLE', `the root helper did not open ${path}`, { hint: `see ${HELPER_LOG} or \`journalctl -u banger-root\`` });
}
