import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { STAGING_PREFIX, VM_UPPER_DISK, VM_WORK_DISK } from '../../config/filenames.js';
import type { FileSyncEntry } from '../../config/schema.js';
import { DROPBEAR_HOST_KEY, DROPBEAR_INITTAB, dropbearHostKey } from '../../guest/dropbear.js';
import { MINIMAL_INITTAB, SSHD_DROPIN } from '../../guest/sshd-dropin.js';
import { generateHostKey } from '../../guest/ssh-keys.js';
import { runCommand } from '../../host/command.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import type { OpContext } from '../op-context.js';

/**
 * A VM's two disks, built on the host without mounts or root: a staging tree
 * packed with `mkfs.ext4 -d`. The initramfs makes their files root's on first
 * boot.
 *
 * - upper: the overlay's upper layer over the shared image. Holds the VM's own
 *   files: hostname, hosts, resolv.conf, sshd drop-in, a fresh host key
 *   (also in dropbear's format), busybox, the minimal init and its inittab
 *   (which SSH server it keeps running).
 * - work: mounted at /root; authorized_keys (StrictModes-correct modes) and
 *   the [[file_sync]] entries.
 */

export interface UpperDiskInputs {
  name: string;
  guestIp: string;
  gatewayIp: string;
  busybox: string;
  minimalInit: string;
  /** The image's own sshd, or banger's dropbear (registry images): which one busybox init keeps running. */
  sshServer: 'image' | 'banger';
}

/** Sparse size of every upper disk: room for what a guest installs over the image. */
const UPPER_DISK_BYTES = 8 * 1024 ** 3;

/** Builds both disks of a new VM in `dir` (0700), from staging trees that are removed afterwards. Returns the VM's SSH host public key (to pin). */
export async function buildVmDisks(dir: string, upper: UpperDiskInputs, work: WorkDiskInputs, ctx: OpContext): Promise<{ hostPublicKey: string }> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const staging = mkdtempSync(join(dir, STAGING_PREFIX));
  try {
    mkdirSync(join(staging, 'upper'));
    mkdirSync(join(staging, 'work'));
    const hostPublicKey = await buildUpperDisk(join(dir, VM_UPPER_DISK), join(staging, 'upper'), upper, ctx);
    failpoint(FAILPOINTS.createDisks);
    const skipped = await buildWorkDisk(join(dir, VM_WORK_DISK), join(staging, 'work'), work, ctx);
    for (const path of skipped) ctx.log.warn({ path }, 'file_sync: host path missing, skipped');
    return { hostPublicKey };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Returns the public half of the host key it generated. */
export async function buildUpperDisk(path: string, staging: string, inputs: UpperDiskInputs, ctx: OpContext): Promise<string> {
  const upper = join(staging, 'upper');
  const etc = join(upper, 'etc');
  // Explicit modes: the daemon's umask is 077 and, in the overlay, an upper directory's mode is the
  // merged directory's mode (a 0700 /etc would lock every user but root out of it).
  for (const dir of [upper, etc, join(etc, 'ssh'), join(etc, 'ssh', 'sshd_config.d'), join(upper, 'banger')]) {
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o755);
  }
  writeReadable(join(etc, 'hostname'), `${inputs.name}\n`);
  writeReadable(join(etc, 'hosts'), `127.0.0.1 localhost\n${inputs.guestIp} ${inputs.name} ${inputs.name}.vm\n::1 localhost ip6-localhost ip6-loopback\n`);
  writeReadable(join(etc, 'resolv.conf'), `nameserver ${inputs.gatewayIp}\n`);
  writeReadable(join(etc, 'ssh', 'sshd_config.d', '99-banger.conf'), SSHD_DROPIN);
  writeReadable(join(etc, 'inittab'), inputs.sshServer === 'banger' ? DROPBEAR_INITTAB : MINIMAL_INITTAB);
  const hostKey = join(etc, 'ssh', 'ssh_host_ed25519_key');
  await generateHostKey(hostKey, `root@${inputs.name}`);
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8');
  // The same key for dropbear, in its own format (DROPBEAR_HOST_KEY is absolute in the guest).
  writeFileSync(join(upper, DROPBEAR_HOST_KEY), dropbearHostKey(readFileSync(hostKey, 'utf8')), { mode: 0o600 });
  copyFileSync(inputs.busybox, join(upper, 'banger', 'busybox'));
  chmodSync(join(upper, 'banger', 'busybox'), 0o755);
  copyFileSync(inputs.minimalInit, join(upper, 'banger', 'init'));
  chmodSync(join(upper, 'banger', 'init'), 0o755);
  await mkfs(path, staging, UPPER_DISK_BYTES, ctx);
  return hostPublicKey;
}

/** A file every guest user may read (0644 whatever the umask). */
function writeReadable(path: string, content: string): void {
  writeFileSync(path, content);
  chmodSync(path, 0o644);
}

export interface WorkDiskInputs {
  authorizedKey: string;
  fileSync: readonly FileSyncEntry[];
  sizeBytes: number;
}

/** Returns the file_sync host paths that were missing (skipped, to be warned about). */
export async function buildWorkDisk(path: string, staging: string, inputs: WorkDiskInputs, ctx: OpContext): Promise<string[]> {
  chmodSync(staging, 0o700);
  const skipped: string[] = [];
  for (const entry of inputs.fileSync) {
    if (!existsSync(entry.host)) {
      skipped.push(entry.host);
      continue;
    }
    const target = join(staging, entry.guest.replace(/^\/root\/?/, ''));
    mkdirSync(dirname(target), { recursive: true });
    if (statSync(entry.host).isDirectory()) cpSync(entry.host, target, { recursive: true });
    else {
      writeFileSync(target, readFileSync(entry.host));
      chmodSync(target, entry.mode ?? 0o600);
    }
  }
  const ssh = join(staging, '.ssh');
  mkdirSync(ssh, { recursive: true });
  chmodSync(ssh, 0o700);
  writeFileSync(join(ssh, 'authorized_keys'), `${inputs.authorizedKey}\n`, { mode: 0o600 });
  await mkfs(path, staging, inputs.sizeBytes, ctx);
  return skipped;
}

/** A sparse ext4 of `sizeBytes` populated from `dir`; lazy init keeps it fast to make. */
async function mkfs(path: string, dir: string, sizeBytes: number, ctx: OpContext): Promise<void> {
  rmSync(path, { force: true });
  await runCommand('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-d', dir, path, `${Math.floor(sizeBytes / (1024 * 1024))}M`], {
    signal: ctx.signal,
  });
}

/** Grows a stopped VM's work disk to `sizeBytes` (file, then filesystem). */
export async function growDisk(path: string, sizeBytes: number, ctx: OpContext): Promise<void> {
  // A killed VM leaves the disk unclean; e2fsprogs refuses to resize it until
  // checked. e2fsck exits 1 (errors corrected) or 2 (corrected, reboot
  // advised) on a repaired disk; 4 and up mean it could not repair it.
  await runCommand('e2fsck', ['-fy', path], { signal: ctx.signal, okCodes: [0, 1, 2] });
  await runCommand('truncate', ['-s', String(sizeBytes), path], { signal: ctx.signal });
  await runCommand('resize2fs', [path], { signal: ctx.signal });
}
