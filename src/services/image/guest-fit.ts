import type { BundleFile } from '../../guest/dropbear.js';
import { BangerError } from '../../rpc/errors.js';
import type { ExtraEntry, MergedTree } from './layer-merge.js';

/**
 * What banger adds to an image from a registry so that any image boots and
 * answers `vm exec` (nothing is asked of the image but a shell):
 * - banger's SSH server bundle under /banger/ssh (see guest/dropbear.ts);
 * - the mount points the initramfs and banger's init need (/dev, /proc,
 *   /sys, /run, /tmp, /root), when the image lacks them;
 * - a root account that can log in: /etc/passwd and /etc/group when absent,
 *   a root line when missing, root's shell set to /bin/sh when the one named
 *   does not exist or refuses logins, and that shell listed in /etc/shells
 *   (dropbear, like sshd, only lets in users whose shell is listed).
 * An image without /bin/sh (distroless) is refused: every guest command
 * banger runs goes through a shell.
 */

const MOUNT_POINTS: readonly { path: string; mode: number }[] = [
  { path: '/dev', mode: 0o755 },
  { path: '/proc', mode: 0o555 },
  { path: '/sys', mode: 0o555 },
  { path: '/run', mode: 0o755 },
  { path: '/tmp', mode: 0o1777 },
  { path: '/root', mode: 0o700 },
];

/** Shells that exist only to refuse a login. */
const NO_LOGIN = /\/(nologin|false)$/;

/** dropbear's (and glibc's) shell list when /etc/shells does not exist. */
const DEFAULT_SHELLS = ['/bin/sh', '/bin/csh'];

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 7 || line.startsWith('#')) continue;
    const [name = '', , uid = '', gid = '', , home = '', shell = ''] = fields;
    if (!/^\d+$/.test(uid) || !/^\d+$/.test(gid)) continue;
    entries.push({ name, uid: Number(uid), gid: Number(gid), home, shell });
  }
  return entries;
}

/** The extra entries that make the merged image fit to run under banger; throws ERR_IMAGE_INVALID when it cannot be. */
export async function guestFitEntries(tree: MergedTree, bundle: readonly BundleFile[]): Promise<ExtraEntry[]> {
  if (!tree.isFile('/bin/sh')) {
    throw new BangerError('ERR_IMAGE_INVALID', 'the image has no /bin/sh: banger runs every guest command through a shell', {
      hint: 'use an image with a shell (distroless images have none; their :debug variants carry busybox)',
    });
  }
  const extras: ExtraEntry[] = [];
  for (const point of MOUNT_POINTS) {
    if (tree.stat(point.path) === undefined) extras.push({ path: point.path, type: 'directory', mode: point.mode });
  }

  const passwdText = (await tree.readFile('/etc/passwd'))?.toString('utf8');
  const lines = passwdText === undefined ? [] : passwdText.replace(/\n$/, '').split('\n');
  const rootIndex = lines.findIndex((line) => parsePasswd(line)[0]?.uid === 0 && line.startsWith('root:'));
  let shell = rootIndex === -1 ? '/bin/sh' : (parsePasswd(lines[rootIndex] ?? '')[0]?.shell ?? '/bin/sh');
  if (shell === '' || NO_LOGIN.test(shell) || !tree.isFile(shell)) shell = '/bin/sh';
  const rootLine = `root:x:0:0:root:/root:${shell}`;
  if (rootIndex === -1) lines.unshift(rootLine);
  else if (lines[rootIndex] !== rootLine) {
    const fields = (lines[rootIndex] ?? '').split(':');
    fields[5] = '/root';
    fields[6] = shell;
    lines[rootIndex] = fields.join(':');
  }
  const passwd = `${lines.join('\n')}\n`;
  if (passwd !== passwdText) extras.push({ path: '/etc/passwd', type: 'file', content: Buffer.from(passwd), mode: 0o644 });
  if ((await tree.readFile('/etc/group')) === undefined) extras.push({ path: '/etc/group', type: 'file', content: Buffer.from('root:x:0:\n'), mode: 0o644 });

  const shellsText = (await tree.readFile('/etc/shells'))?.toString('utf8');
  const shells = shellsText === undefined ? DEFAULT_SHELLS : shellsText.split('\n').map((line) => line.trim());
  if (!shells.includes(shell)) {
    const base = shellsText === undefined ? DEFAULT_SHELLS.join('\n') + '\n' : shellsText.endsWith('\n') || shellsText === '' ? shellsText : `${shellsText}\n`;
    extras.push({ path: '/etc/shells', type: 'file', content: Buffer.from(`${base}${shell}\n`), mode: 0o644 });
  }

  extras.push({ path: '/banger', type: 'directory', mode: 0o755 });
  const dirs = new Set<string>();
  for (const file of bundle) {
    const dir = file.path.slice(0, file.path.lastIndexOf('/'));
    for (let at = dir; at.length > '/banger'.length; at = at.slice(0, at.lastIndexOf('/'))) dirs.add(at);
  }
  for (const dir of [...dirs].sort((a, b) => a.length - b.length)) extras.push({ path: dir, type: 'directory', mode: 0o755 });
  for (const file of bundle) extras.push({ path: file.path, type: 'file', content: file.content, mode: file.mode });
  return extras;
}

/**
 * The account an image's `User` names (`name`, `uid`, `name:group` or
 * `uid:gid`), as a login name from its /etc/passwd; a name is kept as given
 * when it is not there, a bare number too. Undefined for root or no user.
 */
export async function resolveImageUser(tree: MergedTree, user: string | undefined): Promise<string | undefined> {
  if (user === undefined || user === '') return undefined;
  const account = user.split(':')[0] ?? '';
  if (account === '' || account === 'root' || account === '0') return undefined;
  const entries = parsePasswd((await tree.readFile('/etc/passwd'))?.toString('utf8') ?? '');
  const found = /^\d+$/.test(account) ? entries.find((entry) => entry.uid === Number(account)) : entries.find((entry) => entry.name === account);
  return found?.name ?? account;
}
