import { mkdirSync } from 'node:fs';

import { shellQuote } from '../../guest/shell.js';
import type { OpContext } from '../op-context.js';
import { runInBuildNamespace, type BuildHost } from './build-namespace.js';
import type { ImageCatalogEntry } from './catalog.js';

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

/**
 * mmdebstrap's command line (without the program) for building `entry` into
 * the tarball `target`. (mmdebstrap splits special hooks like sync-in into
 * words as a shell would, so the cache path is quoted.)
 */
export function mmdebstrapArgs(entry: ImageCatalogEntry, mirror: string, target: string, aptCache: string): string[] {
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
    `--customize-hook=${shareableHook()}`,
    entry.suite,
    target,
    mirror,
  ];
}

/**
 * Builds `entry` into the tarball `target` (a file; its directory must
 * exist). Cancellable through ctx.signal: every process of the build is
 * killed and nothing is left but a partial `target`.
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
  ctx.progress('bootstrap', `installing ${entry.suite} minbase + ${entry.packages.join(', ')}`);
  // mmdebstrap's temporary chroot goes to the namespace's tmpfs.
  const script = `TMPDIR=$scratch; export TMPDIR\n${shellQuote(host.tools.mmdebstrap)} "$@"`;
  await runInBuildNamespace(host, script, mmdebstrapArgs(entry, mirror, target, aptCache), {
    what: 'mmdebstrap',
    signal: ctx.signal,
    onLine: (line) => {
      if (line.startsWith('I: ')) ctx.progress('bootstrap', line.slice(3));
      else if (line.startsWith('W: ') || line.startsWith('E: ')) ctx.log.warn({ line }, 'mmdebstrap');
    },
  });
}
