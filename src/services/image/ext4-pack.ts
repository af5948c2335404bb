import { rmSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';

import { runCommand } from '../../host/command.js';
import { shellQuote } from '../../guest/shell.js';
import { BangerError } from '../../rpc/errors.js';
import type { OpContext } from '../op-context.js';
import { runInBuildNamespace, type BuildHost, type BuildTools } from './build-namespace.js';
import { readTarIndex, type TarMember } from './tar-index.js';

/**
 * Packs a root filesystem tarball into an ext4 image, keeping every file's
 * numeric owner, mode (setuid bits included), times, hard links and extended
 * attributes (ACLs, file capabilities).
 *
 * e2fsprogs 1.47.0 (Debian 12) cannot take a tarball for `mkfs.ext4 -d` (that
 * arrived in 1.47.1), so the tarball is unpacked into a tmpfs inside the build
 * namespace and `mkfs.ext4 -d` reads that tree; rootless, the namespace maps
 * the tarball's owners to ids the user may create, and mkfs sees them as the
 * tarball records them. Device nodes cannot be made in a user namespace, so
 * they are left out of the unpack and created in the image afterwards with
 * debugfs, which writes the filesystem file directly (root and user alike).
 */

const BLOCK = 4096;
const INODE_BYTES = 256;
const MIB = 1024 * 1024;
/** Longest symlink target ext4 keeps in the inode itself (no data block). */
const FAST_SYMLINK_MAX = 59;

export interface Ext4Geometry {
  /** Image size: the content, 1.2x plus 128 MiB for metadata and journal, in whole MiB. */
  sizeBytes: number;
  /** Inodes to create (`mkfs.ext4 -N`): one per member that needs one, plus 20% and a little. */
  inodes: number;
}

/** How big the ext4 image for these tar members must be. */
export function ext4Geometry(members: readonly TarMember[]): Ext4Geometry {
  let dataBytes = 0;
  let inodes = 0;
  for (const member of members) {
    if (member.type === 'hardlink') continue; // shares its target's inode and blocks
    inodes++;
    if (member.type === 'file') dataBytes += Math.ceil(member.size / BLOCK) * BLOCK;
    else if (member.type === 'directory') dataBytes += BLOCK;
    else if (member.type === 'symlink' && Buffer.byteLength(member.linkName) > FAST_SYMLINK_MAX) dataBytes += BLOCK;
  }
  const used = dataBytes + inodes * INODE_BYTES;
  return { sizeBytes: Math.ceil((used * 1.2 + 128 * MIB) / MIB) * MIB, inodes: Math.ceil(inodes * 1.2) + 1024 };
}

export interface DeviceNode {
  /** The member's name in the tarball (for tar's --exclude). */
  tarName: string;
  /** Absolute directory in the image, e.g. `/dev`. */
  dir: string;
  name: string;
  type: 'char' | 'block';
  /** Permission bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  major: number;
  minor: number;
}

/** Names debugfs's command parser takes literally inside double quotes. */
const SAFE_COMPONENT = /^[A-Za-z0-9._+@:,-]+$/;

/** The tarball's character and block devices. Throws for a name that cannot be passed to debugfs safely. */
export function deviceNodes(members: readonly TarMember[]): DeviceNode[] {
  const nodes: DeviceNode[] = [];
  for (const member of members) {
    if (member.type !== 'char' && member.type !== 'block') continue;
    const path = posix.normalize(`/${member.name}`);
    const components = path.split('/').slice(1);
    if (components.length === 0 || !components.every((c) => SAFE_COMPONENT.test(c) && c !== '..')) {
      throw new BangerError('ERR_HOST_COMMAND_FAILED', `the image contains a device node banger cannot recreate: ${JSON.stringify(member.name)}`);
    }
    nodes.push({
      tarName: member.name,
      dir: posix.dirname(path),
      name: posix.basename(path),
      type: member.type,
      mode: member.mode,
      uid: member.uid,
      gid: member.gid,
      major: member.devMajor,
      minor: member.devMinor,
    });
  }
  return nodes;
}

/** The file type bits of an inode mode. */
const TYPE_BITS = { char: 0o020000, block: 0o060000 } as const;

/** A debugfs command script (`debugfs -w -f`) creating these nodes. */
export function deviceNodeScript(nodes: readonly DeviceNode[]): string {
  const lines: string[] = [];
  for (const node of nodes) {
    // debugfs's mknod takes a name in the current directory only.
    lines.push(`cd "${node.dir}"`);
    lines.push(`mknod "${node.name}" ${node.type === 'char' ? 'c' : 'b'} ${node.major} ${node.minor}`);
    lines.push(`sif "${node.name}" mode 0${(TYPE_BITS[node.type] | node.mode).toString(8)}`);
    lines.push(`sif "${node.name}" uid ${node.uid}`);
    lines.push(`sif "${node.name}" gid ${node.gid}`);
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Checks `debugfs -R "ls -p DIR"` output (lines `/inode/mode/uid/gid/name/size/`)
 * against the nodes expected in DIR. debugfs exits 0 even when a command
 * fails, so this is how a failed mknod shows up.
 */
export function missingDeviceNodes(dir: string, lsOutput: string, nodes: readonly DeviceNode[]): DeviceNode[] {
  const found = new Map<string, { mode: number; uid: number; gid: number }>();
  for (const line of lsOutput.split('\n')) {
    const fields = line.split('/');
    if (fields.length < 7) continue;
    const [, , mode = '', uid = '', gid = '', name = ''] = fields;
    found.set(name, { mode: parseInt(mode, 8), uid: Number(uid), gid: Number(gid) });
  }
  return nodes.filter((node) => {
    if (node.dir !== dir) return false;
    const entry = found.get(node.name);
    return entry?.mode !== (TYPE_BITS[node.type] | node.mode) || entry.uid !== node.uid || entry.gid !== node.gid;
  });
}

/** Unpacks `tarball` into the namespace's tmpfs and makes the image from it; see the module comment. */
function packScript(tools: BuildTools): string {
  return [
    'tarball=$1 image=$2 size=$3 inodes=$4',
    'shift 4',
    // "$@": --exclude options for the device nodes, literal names (position matters: after --no-wildcards).
    `${shellQuote(tools.tar)} --extract --file="$tarball" --directory="$scratch" --numeric-owner --same-owner --same-permissions --xattrs --xattrs-include='*' --anchored --no-wildcards "$@"`,
    // 4 KiB blocks whatever the size (mke2fs would pick 1 KiB below 512 MiB), as ext4Geometry assumes.
    `${shellQuote(tools.mkfsExt4)} -q -F -L banger-image -b 4096 -N "$inodes" -E lazy_itable_init=0 -d "$scratch" "$image" "$size"`,
  ].join('\n');
}

/**
 * Packs `tarball` into a new ext4 file at `image`; returns the image size.
 * Cancellable through ctx.signal; on failure `image` may be left partly
 * written (the caller's staging dir removes it).
 */
export async function packExt4(tarball: string, image: string, host: BuildHost, ctx: OpContext): Promise<number> {
  ctx.progress('pack', 'packing the root into an ext4 image');
  const members = await readTarIndex(tarball);
  ctx.signal.throwIfAborted();
  const { sizeBytes, inodes } = ext4Geometry(members);
  const nodes = deviceNodes(members);
  await runInBuildNamespace(
    host,
    packScript(host.tools),
    [tarball, image, `${sizeBytes / MIB}M`, String(inodes), ...nodes.map((node) => `--exclude=${node.tarName}`)],
    { what: 'packing the image', signal: ctx.signal },
  );
  if (nodes.length > 0) await restoreDeviceNodes(image, nodes, host.tools.debugfs, ctx.signal);
  return sizeBytes;
}

async function restoreDeviceNodes(image: string, nodes: readonly DeviceNode[], debugfs: string, signal: AbortSignal): Promise<void> {
  const script = `${image}.devices`;
  writeFileSync(script, deviceNodeScript(nodes));
  try {
    await runCommand(debugfs, ['-w', '-f', script, image], { signal });
  } finally {
    rmSync(script, { force: true });
  }
  for (const dir of new Set(nodes.map((node) => node.dir))) {
    let listing = '';
    await runCommand(debugfs, ['-R', `ls -p "${dir}"`, image], { signal, onLine: (line) => (listing += `${line}\n`) });
    const missing = missingDeviceNodes(dir, listing, nodes);
    if (missing.length > 0) {
      throw new BangerError('ERR_HOST_COMMAND_FAILED', `debugfs could not create ${missing.map((n) => posix.join(n.dir, n.name)).join(', ')} in the image`, {
        hint: 'see `banger daemon logs` for the full output',
      });
    }
  }
}
