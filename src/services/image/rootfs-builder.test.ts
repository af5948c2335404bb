import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { findExecutable } from '../../host/executables.js';
import { APT_ARCHIVES_RESET_HOOK, COLLECT_DEBS_HOOK, IMAGE_FSTAB, MASKED_UNITS, mmdebstrapArgs, shareableHook } from './rootfs-builder.js';

/**
 * The mmdebstrap hooks, run the way mmdebstrap runs them (`sh -c HOOK exec
 * CHROOT`) against small fake roots; the chrooted one uses a static busybox as
 * the image's /bin/sh, so this needs root (chroot) and busybox-static, as CI has.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-hooks-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fake image root whose /bin holds a static busybox and the applets the hooks use. */
function fakeRoot(): string {
  const dir = mkdtempSync(join(root, 'root-'));
  const busybox = findExecutable('busybox');
  assert.ok(busybox !== undefined, 'busybox-static is needed for this test');
  mkdirSync(join(dir, 'bin'));
  copyFileSync(busybox, join(dir, 'bin', 'busybox'));
  chmodSync(join(dir, 'bin', 'busybox'), 0o755);
  for (const applet of ['sh', 'rm', 'ln', 'printf']) symlinkSync('busybox', join(dir, 'bin', applet));
  mkdirSync(join(dir, 'etc', 'ssh'), { recursive: true });
  return dir;
}

function runHook(hook: string, chrootDir: string): void {
  execFileSync('sh', ['-c', hook, 'exec', chrootDir], { stdio: 'pipe' });
}

test('the shareable hook removes host keys, sets hostname/fstab/machine-id and masks units, inside the image', () => {
  const dir = fakeRoot();
  for (const key of ['ssh_host_ed25519_key', 'ssh_host_ed25519_key.pub', 'ssh_host_rsa_key']) writeFileSync(join(dir, 'etc', 'ssh', key), 'secret');
  writeFileSync(join(dir, 'etc', 'ssh', 'sshd_config'), 'Port 22\n');
  // Absolute symlinks must be replaced, not followed (outside a chroot they would point at the host).
  const outside = join(root, 'outside-hostname');
  writeFileSync(outside, 'untouched\n');
  symlinkSync(outside, join(dir, 'etc', 'hostname'));
  writeFileSync(join(dir, 'etc', 'machine-id'), '0123456789abcdef\n');
  mkdirSync(join(dir, 'etc', 'systemd', 'system'), { recursive: true });
  writeFileSync(join(dir, 'etc', 'systemd', 'system', 'getty@tty1.service'), '[Unit]\n');

  runHook(shareableHook(), dir);

  assert.deepEqual(readdirSync(join(dir, 'etc', 'ssh')), ['sshd_config']);
  assert.equal(lstatSync(join(dir, 'etc', 'hostname')).isFile(), true);
  assert.equal(readFileSync(join(dir, 'etc', 'hostname'), 'utf8'), 'banger\n');
  assert.equal(readFileSync(outside, 'utf8'), 'untouched\n');
  assert.equal(readFileSync(join(dir, 'etc', 'fstab'), 'utf8'), `${IMAGE_FSTAB}\n`);
  assert.equal(readFileSync(join(dir, 'etc', 'machine-id'), 'utf8'), '');
  assert.equal(statSync(join(dir, 'etc', 'machine-id')).mode & 0o777, 0o644);
  for (const unit of MASKED_UNITS) assert.equal(readlinkSync(join(dir, 'etc', 'systemd', 'system', unit)), '/dev/null', unit);
});

test('without systemd the hook masks nothing and creates no systemd directory', () => {
  const dir = fakeRoot();
  runHook(shareableHook(), dir);
  assert.equal(existsSync(join(dir, 'etc', 'systemd')), false);
  assert.equal(readFileSync(join(dir, 'etc', 'hostname'), 'utf8'), 'banger\n');
});

test('the cache hooks hand over only the .debs, owned by root, and put the archive directory back', () => {
  const dir = mkdtempSync(join(root, 'root-'));
  mkdirSync(join(dir, 'tmp'));
  const archives = join(dir, 'var', 'cache', 'apt', 'archives');
  mkdirSync(join(archives, 'partial'), { recursive: true, mode: 0o700 });
  chownSync(join(archives, 'partial'), 42, 0); // _apt's, as apt leaves it
  chmodSync(archives, 0o700); // what sync-in of a 0700 cache directory leaves
  writeFileSync(join(archives, 'bash_5.2_amd64.deb'), 'deb');
  writeFileSync(join(archives, 'git_2.39_amd64.deb'), 'deb');
  chownSync(join(archives, 'git_2.39_amd64.deb'), 42, 42);
  writeFileSync(join(archives, 'lock'), '');

  runHook(COLLECT_DEBS_HOOK, dir);
  const out = join(dir, 'tmp', 'banger-debs');
  assert.deepEqual(readdirSync(out).sort(), ['bash_5.2_amd64.deb', 'git_2.39_amd64.deb']);
  for (const entry of ['.', ...readdirSync(out)]) assert.equal(statSync(join(out, entry)).uid, 0, entry);
  assert.equal(statSync(out).mode & 0o777, 0o700);
  assert.deepEqual(readdirSync(archives).sort(), ['lock', 'partial']);

  runHook(APT_ARCHIVES_RESET_HOOK, dir);
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(archives).sort(), ['lock', 'partial']);
  assert.equal(statSync(archives).mode & 0o777, 0o755);
  assert.equal(statSync(join(archives, 'partial')).uid, 42);
});

test('mmdebstrap writes a tarball in unshare mode, syncs the .debs out before the edits, and takes suite, target, mirror last', () => {
  const args = mmdebstrapArgs(
    { name: 'x', description: 'x', suite: 'bookworm', packages: ['git', 'curl'], kernel: 'k' },
    'http://deb.debian.org/debian',
    '/s/rootfs.tar',
    '/c/apt-archives',
  );
  assert.ok(args.includes('--mode=unshare'));
  assert.ok(args.includes('--format=tar'));
  assert.ok(args.includes('--include=git,curl'));
  const hooks = args.filter((a) => a.startsWith('--customize-hook='));
  assert.deepEqual(hooks, [
    `--customize-hook=${COLLECT_DEBS_HOOK}`,
    '--customize-hook=sync-out /tmp/banger-debs /c/apt-archives',
    `--customize-hook=${APT_ARCHIVES_RESET_HOOK}`,
    `--customize-hook=${shareableHook()}`,
  ]);
  assert.ok(args.includes('--setup-hook=sync-in /c/apt-archives /var/cache/apt/archives/'));
  assert.deepEqual(args.slice(-3), ['bookworm', '/s/rootfs.tar', 'http://deb.debian.org/debian']);
  const spaced = mmdebstrapArgs({ name: 'x', description: 'x', suite: 'bookworm', packages: [], kernel: 'k' }, 'http://m', '/t.tar', "/home/a b/.cache/it's");
  assert.ok(spaced.includes(`--setup-hook=sync-in '/home/a b/.cache/it'\\''s' /var/cache/apt/archives/`));
});
