import { existsSync, mkdirSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { runCommand } from '../../host/command.js';
import type { OpContext } from '../op-context.js';
import type { ImageCatalogEntry } from './catalog.js';

/**
 * Builds a catalog image's root filesystem on the host with mmdebstrap, makes
 * it fit to be a shared read-only lower layer, and packs it into an ext4 file.
 *
 * Downloaded .debs are kept in the cache (apt verifies them against the
 * signed index on every use), so rebuilding only costs the install.
 */

/** Units that only slow a sandbox's boot: the root is assembled by banger's initramfs. */
const MASKED_UNITS = ['e2scrub_reap.service', 'systemd-networkd-wait-online.service', 'getty@tty1.service', 'apt-daily.timer', 'apt-daily-upgrade.timer'];

export async function buildDebianRoot(entry: ImageCatalogEntry, mirror: string, target: string, aptCache: string, ctx: OpContext): Promise<void> {
  mkdirSync(aptCache, { recursive: true, mode: 0o700 });
  ctx.progress('bootstrap', `installing ${entry.suite} minbase + ${entry.packages.join(', ')}`);
  const args = [
    '--variant=minbase',
    `--include=${entry.packages.join(',')}`,
    '--mode=root',
    '--skip=download/empty',
    '--skip=essential/unlink',
    '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
    `--setup-hook=sync-in ${aptCache} /var/cache/apt/archives/`,
    `--customize-hook=sync-out /var/cache/apt/archives ${aptCache}`,
    '--customize-hook=rm -f "$1"/var/cache/apt/archives/*.deb',
    entry.suite,
    target,
    mirror,
  ];
  await runCommand('mmdebstrap', args, {
    signal: ctx.signal,
    onLine: (line) => {
      if (line.startsWith('I: ')) ctx.progress('bootstrap', line.slice(3));
    },
  });
  ctx.progress('customize', 'preparing the root to be shared by VMs');
  makeShareable(target);
}

/**
 * What every VM must not share, or must not wait for: host keys are per VM
 * (banger writes them to each VM's upper disk), the hostname is per VM, the
 * initramfs mounts the disks (empty fstab), slow units are masked.
 */
export function makeShareable(root: string): void {
  const sshDir = join(root, 'etc', 'ssh');
  if (existsSync(sshDir)) {
    for (const file of readdirSync(sshDir)) if (file.startsWith('ssh_host_')) rmSync(join(sshDir, file));
  }
  writeFileSync(join(root, 'etc', 'hostname'), 'banger\n');
  writeFileSync(join(root, 'etc', 'fstab'), '# banger: the initramfs mounts the root overlay and /root\n');
  rmSync(join(root, 'etc', 'machine-id'), { force: true });
  writeFileSync(join(root, 'etc', 'machine-id'), '');
  const systemdDir = join(root, 'etc', 'systemd', 'system');
  if (existsSync(systemdDir)) {
    for (const unit of MASKED_UNITS) {
      const link = join(systemdDir, unit);
      rmSync(link, { force: true });
      symlinkSync('/dev/null', link);
    }
  }
}

/** Packs a directory into an ext4 image sized to fit with headroom (the image is read-only once built). */
export async function packExt4(dir: string, image: string, ctx: OpContext): Promise<number> {
  ctx.progress('pack', 'packing the root into an ext4 image');
  const used = await directoryBytes(dir);
  const size = Math.ceil((used * 1.2 + 128 * 1024 * 1024) / (1024 * 1024)) * 1024 * 1024;
  await runCommand('mkfs.ext4', ['-q', '-F', '-L', 'banger-image', '-E', 'lazy_itable_init=0', '-d', dir, image, `${size / (1024 * 1024)}M`], {
    signal: ctx.signal,
  });
  return size;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  const walk = (path: string): void => {
    for (const entry of readdirSync(path, { withFileTypes: true })) {
      const full = join(path, entry.name);
      if (entry.isDirectory()) {
        total += 4096;
        walk(full);
      } else if (entry.isFile()) total += Math.ceil(statSync(full).size / 4096) * 4096;
      else total += 4096;
    }
  };
  walk(dir);
  await Promise.resolve();
  return total;
}
