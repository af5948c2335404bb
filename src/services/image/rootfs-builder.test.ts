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

import { pino } from 'pino';

import { findExecutable } from '../../host/executables.js';
import { BangerError } from '../../rpc/errors.js';
import type { OpContext } from '../op-context.js';
import { resolveBuildHost } from './build-namespace.js';
import { MISE_RELEASE, type ImageCatalogEntry } from './catalog.js';
import {
  APT_ARCHIVES_RESET_HOOK,
  buildDebianRoot,
  COLLECT_DEBS_HOOK,
  IMAGE_FSTAB,
  MASKED_UNITS,
  MISE_OWNER_HOOK,
  MISE_PATH,
  mmdebstrapArgs,
  NPM_CACHE_DIR,
  shareableHook,
} from './rootfs-builder.js';

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

test('with mise, the binary is copied into /usr/local/bin and made root 0755 after the cache hooks and before the edits; without, no such hooks', () => {
  const entry: ImageCatalogEntry = { name: 'x', description: 'x', suite: 'bookworm', packages: ['git'], kernel: 'k', mise: MISE_RELEASE };
  const args = mmdebstrapArgs(entry, 'http://m', '/s/rootfs.tar', '/c/apt-archives', '/s/mise-1/mise');
  assert.deepEqual(
    args.filter((a) => a.startsWith('--customize-hook=')),
    [
      `--customize-hook=${COLLECT_DEBS_HOOK}`,
      '--customize-hook=sync-out /tmp/banger-debs /c/apt-archives',
      `--customize-hook=${APT_ARCHIVES_RESET_HOOK}`,
      '--customize-hook=copy-in /s/mise-1/mise /usr/local/bin',
      `--customize-hook=${MISE_OWNER_HOOK}`,
      `--customize-hook=${shareableHook()}`,
    ],
  );
  assert.deepEqual(args.slice(-3), ['bookworm', '/s/rootfs.tar', 'http://m']);
  const spaced = mmdebstrapArgs(entry, 'http://m', '/t.tar', '/c', "/home/a b/it's/mise");
  assert.ok(spaced.includes(`--customize-hook=copy-in '/home/a b/it'\\''s/mise' /usr/local/bin`));
  // The entry's mise alone adds nothing: the hooks come with the host file to copy in.
  assert.deepEqual(mmdebstrapArgs(entry, 'http://m', '/t.tar', '/c'), mmdebstrapArgs({ ...entry, mise: undefined }, 'http://m', '/t.tar', '/c'));
  assert.equal(
    mmdebstrapArgs(entry, 'http://m', '/t.tar', '/c').some((a) => a.includes('copy-in') || a.includes(MISE_PATH)),
    false,
  );
});

test("the mise owner hook makes the copied-in file root's and 0755, whoever owned it and whatever its mode", () => {
  const dir = mkdtempSync(join(root, 'root-'));
  mkdirSync(join(dir, 'usr', 'local', 'bin'), { recursive: true });
  const mise = join(dir, 'usr', 'local', 'bin', 'mise');
  writeFileSync(mise, 'elf');
  chownSync(mise, 1000, 1000);
  chmodSync(mise, 0o700);
  runHook(MISE_OWNER_HOOK, dir);
  const stat = statSync(mise);
  assert.deepEqual([stat.uid, stat.gid, stat.mode & 0o7777], [0, 0, 0o755]);
});

function ctx(stages: string[]): OpContext {
  return { opId: 'op_test', signal: new AbortController().signal, log: pino({ level: 'silent' }), progress: (stage) => stages.push(stage) };
}

/**
 * A stand-in for mmdebstrap, run by buildDebianRoot in the real build
 * namespace: it writes to the target (last but one argument) what the copy-in
 * hook's host path looks like from there, its words split by a shell as
 * mmdebstrap splits them; or, with `fail`, fails as mmdebstrap does.
 */
function fakeMmdebstrap(fail: boolean): string {
  const path = join(mkdtempSync(join(root, 'fake-')), 'mmdebstrap');
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      fail ? 'echo "E: no luck" >&2; exit 1' : '',
      'eval "target=\\${$(($# - 1))}"',
      'for arg do',
      '  case $arg in',
      `    '--customize-hook=copy-in '*) (eval "set -- \${arg#--customize-hook=copy-in }"; stat -c '%a %s' "$1"; head -c 4 "$1" | od -An -c; echo "into $2") ;;`,
      '  esac',
      'done > "$target"',
    ].join('\n'),
  );
  chmodSync(path, 0o755);
  return path;
}

test('buildDebianRoot fetches mise before mmdebstrap, hands it a host path the build namespace reads, and removes it afterwards, also when mmdebstrap fails', async () => {
  const staging = mkdtempSync(join(root, 'staging '));
  const cache = join(root, 'cache dir');
  const aptCache = join(cache, 'apt-archives');
  const entry: ImageCatalogEntry = { name: 'x', description: 'x', suite: 'bookworm', packages: ['git'], kernel: 'k', mise: MISE_RELEASE };
  const hostWith = (mmdebstrap: string) => resolveBuildHost({ findTool: (name) => (name === 'mmdebstrap' ? mmdebstrap : findExecutable(name)) });
  const target = join(staging, 'rootfs.tar');
  const stages: string[] = [];

  await buildDebianRoot(entry, 'http://m', target, aptCache, hostWith(fakeMmdebstrap(false)), ctx(stages));
  const seen = readFileSync(target, 'utf8').split('\n');
  const { size } = statSync(join(cache, NPM_CACHE_DIR, readdirSync(join(cache, NPM_CACHE_DIR))[0] ?? ''));
  assert.ok(size > 1_000_000, 'the npm tarball is cached beside the apt cache');
  assert.match(seen[0] ?? '', /^755 \d{8,9}$/, "an executable of mise's size, readable in the namespace");
  assert.equal(seen[1]?.replace(/\s+/g, ' ').trim(), '177 E L F');
  assert.equal(seen[2], 'into /usr/local/bin');
  assert.deepEqual([...new Set(stages)], ['mise', 'bootstrap'], 'mise is fetched first');
  assert.deepEqual(readdirSync(staging), ['rootfs.tar'], 'the mise copy is gone from the staging dir');

  rmSync(target);
  const failed = mkdtempSync(join(root, 'staging-'));
  await assert.rejects(
    buildDebianRoot(entry, 'http://m', join(failed, 'rootfs.tar'), aptCache, hostWith(fakeMmdebstrap(true)), ctx([])),
    (error: unknown) => error instanceof BangerError && error.code === 'ERR_HOST_COMMAND_FAILED' && error.message.includes('mmdebstrap'),
  );
  assert.deepEqual(readdirSync(failed), []);
});
