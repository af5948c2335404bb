import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { shellQuote } from '../../guest/shell.js';
import type { OpContext } from '../op-context.js';
import { runInBuildNamespace, type BuildHost } from './build-namespace.js';
import type { ImageCatalogEntry } from './catalog.js';
import { fetchMise } from './mise.js';

/**
 * Builds a catalog image's root filesystem with mmdebstrap into a tarball
 * (owners recorded as numbers), already fit to be a shared read-only lower
 * layer: the edits are mmdebstrap hooks, so they happen inside the build, the
 * same way for root and for an ordinary user, and nothing of the image is
 * ever unpacked on the host's disk.
 *
 * mmdebstrap runs in the build namespace (build-namespace.ts) where it is
 * root, so it uses its `unshare` mode's root path (mount and pid namespaces
 * of its own, no user namespace) with its chroot in the namespace's tmpfs.
 *
 * Downloaded .debs are kept in the cache (apt verifies them against the
 * signed index on every use), so rebuilding only costs the install.
 *
 * An entry with `mise` also gets that pinned binary at MISE_PATH, downloaded
 * from npm on the host (mise.ts, cached beside the .debs) and copied in by a
 * hook, owned by root and mode 0755.
 */

/** Units that only slow a sandbox's boot: the root is assembled by banger's initramfs. */
export const MASKED_UNITS = [
  'e2scrub_reap.service',
  'systemd-networkd-wait-online.service',
  'getty@tty1.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
];

/** Placeholder hostname baked into images; each VM sets its own at boot. */
export const IMAGE_HOSTNAME = 'banger';

/** What /etc/fstab says in an image. */
export const IMAGE_FSTAB = '# banger: the initramfs mounts the root overlay and /root';

/**
 * What every VM must not share, or must not wait for: host keys are per VM
 * (banger writes them to each VM's upper disk), the hostname is per VM, the
 * initramfs mounts the disks (empty fstab), machine-id is made at first boot,
 * slow units are masked. A shell script run chrooted into the image (paths,
 * and symlinks in them, resolve inside the image); files are replaced, never
 * written through an existing symlink.
 */
export function shareableScript(): string {
  return [
    'set -e',
    'umask 022',
    'rm -f /etc/ssh/ssh_host_*',
    'rm -f /etc/hostname /etc/fstab /etc/machine-id',
    `printf '%s\\n' ${shellQuote(IMAGE_HOSTNAME)} > /etc/hostname`,
    `printf '%s\\n' ${shellQuote(IMAGE_FSTAB)} > /etc/fstab`,
    ': > /etc/machine-id',
    'if [ -d /etc/systemd/system ]; then',
    `  for unit in ${MASKED_UNITS.map(shellQuote).join(' ')}; do`,
    '    rm -f "/etc/systemd/system/$unit"',
    '    ln -s /dev/null "/etc/systemd/system/$unit"',
    '  done',
    'fi',
  ].join('\n');
}

/** The customize hook that runs shareableScript() in the image ("$1" is the chroot directory). */
export function shareableHook(): string {
  return `chroot "$1" /bin/sh -c ${shellQuote(shareableScript())}`;
}

/** Where the .debs wait inside the chroot to be synced out to the cache. */
const DEBS_OUT = '/tmp/banger-debs';

/**
 * Gathers the downloaded .debs in DEBS_OUT, owned by root, for `sync-out`.
 * Syncing out /var/cache/apt/archives itself would also copy its `partial/`,
 * owned by _apt: rootless, that becomes a directory owned by a subordinate id
 * in the user's cache, which the user could not even delete.
 */
export const COLLECT_DEBS_HOOK = `mkdir -m 0700 "$1"${DEBS_OUT} && find "$1"/var/cache/apt/archives -maxdepth 1 -type f -name '*.deb' -exec mv -t "$1"${DEBS_OUT} {} + && chown -R 0:0 "$1"${DEBS_OUT}`;

/**
 * Then puts the archive directory back as Debian ships it: no .debs (they
 * went to the cache), and mode 0755 (sync-in copied the cache directory's
 * own 0700 onto it).
 */
export const APT_ARCHIVES_RESET_HOOK = `rm -rf "$1"${DEBS_OUT} && chmod 0755 "$1"/var/cache/apt/archives`;

/** Where mise is installed in an image. */
export const MISE_PATH = '/usr/local/bin/mise';

/** The npm tarball cache, beside the apt archive cache (both under banger's cache dir). */
export const NPM_CACHE_DIR = 'npm';

/**
 * After copy-in: root's and 0755 whoever owned the host file and whatever
 * its mode (copy-in keeps both; rootless, the user's file already maps to
 * root, this makes it not depend on that). The path is the regular file
 * copy-in just wrote, in a chroot nothing else runs in.
 */
export const MISE_OWNER_HOOK = `chown 0:0 "$1"${MISE_PATH} && chmod 0755 "$1"${MISE_PATH}`;

/**
 * mmdebstrap's command line (without the program) for building `entry` into
 * the tarball `target`; `misePath` is the host file (named `mise`) to install
 * at MISE_PATH, for entries with `mise`. (mmdebstrap splits special hooks
 * like sync-in and copy-in into words as a shell would, so host paths are
 * quoted.)
 */
export function mmdebstrapArgs(entry: ImageCatalogEntry, mirror: string, target: string, aptCache: string, misePath?: string): string[] {
  const miseHooks =
    misePath === undefined ? [] : [`--customize-hook=copy-in ${shellQuote(misePath)} ${dirname(MISE_PATH)}`, `--customize-hook=${MISE_OWNER_HOOK}`];
  return [
    '--variant=minbase',
    `--include=${entry.packages.join(',')}`,
    '--mode=unshare',
    '--format=tar',
    '--skip=download/empty',
    '--skip=essential/unlink',
    '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
    `--setup-hook=sync-in ${shellQuote(aptCache)} /var/cache/apt/archives/`,
    `--customize-hook=${COLLECT_DEBS_HOOK}`,
    `--customize-hook=sync-out ${DEBS_OUT} ${shellQuote(aptCache)}`,
    `--customize-hook=${APT_ARCHIVES_RESET_HOOK}`,
    ...miseHooks,
    `--customize-hook=${shareableHook()}`,
    entry.suite,
    target,
    mirror,
  ];
}

/**
 * Builds `entry` into the tarball `target` (a file; its directory must
 * exist, and is a staging directory the build may use for scratch files: for
 * mise, `mise-*` holding the binary while mmdebstrap copies it in, removed
 * before this returns, and with the staging directory after a crash). The
 * npm cache is NPM_CACHE_DIR beside `aptCache`. Cancellable through
 * ctx.signal: every process of the build is killed and nothing is left but a
 * partial `target`.
 */
export async function buildDebianRoot(
  entry: ImageCatalogEntry,
  mirror: string,
  target: string,
  aptCache: string,
  host: BuildHost,
  ctx: OpContext,
): Promise<void> {
  mkdirSync(aptCache, { recursive: true, mode: 0o700 });
  let miseDir: string | undefined;
  try {
    let misePath: string | undefined;
    if (entry.mise !== undefined) {
      const { version } = entry.mise;
      // On the host's disk beside the target, not in /tmp or the namespace's tmpfs: a directory of the user banger
      // runs as (root in the build's user namespace, so mmdebstrap can read it), gone with the staging dir after a crash.
      miseDir = mkdtempSync(join(dirname(target), 'mise-'));
      ctx.progress('mise', `fetching mise ${version} from npm`);
      misePath = await fetchMise(entry.mise, join(dirname(aptCache), NPM_CACHE_DIR), miseDir, {
        signal: ctx.signal,
        onProgress: ({ received, total }) => {
          ctx.progress('mise', `downloading mise ${version}`, { current: received, total });
        },
      });
    }
    ctx.progress('bootstrap', `installing ${entry.suite} minbase + ${entry.packages.join(', ')}`);
    // mmdebstrap's temporary chroot goes to the namespace's tmpfs.
    const script = `TMPDIR=$scratch; export TMPDIR\n${shellQuote(host.tools.mmdebstrap)} "$@"`;
    await runInBuildNamespace(host, script, mmdebstrapArgs(entry, mirror, target, aptCache, misePath), {
      what: 'mmdebstrap',
      signal: ctx.signal,
      onLine: (line) => {
        if (line.startsWith('I: ')) ctx.progress('bootstrap', line.slice(3));
        else if (line.startsWith('W: ') || line.startsWith('E: ')) ctx.log.warn({ line }, 'mmdebstrap');
      },
    });
  } finally {
    if (miseDir !== undefined) rmSync(miseDir, { recursive: true, force: true });
  }
}
