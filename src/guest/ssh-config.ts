import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isIP } from 'node:net';
import { basename, dirname, isAbsolute, join } from 'node:path';

import { BangerError, hasErrnoCode } from '../rpc/errors.js';
import { VM_NAME } from '../rpc/schemas.js';
import { describeValue } from '../rpc/validation.js';

/**
 * `ssh root@<name>.vm` with the plain system ssh. banger keeps its own
 * ssh_config (in its config dir) that the daemon rewrites as VMs start and
 * stop: one `Host <name>.vm` block per running VM naming its address, then
 * `Host *.vm` with banger's key and known_hosts. The daemon only ever writes
 * that file. The user's `~/.ssh/config` is touched only by an explicit
 * `banger ssh-config --install`, which adds a marker-fenced `Include` of it
 * at the top, and `--uninstall`, which takes exactly that block out again;
 * every other byte of the user's file stays as it was.
 */

export interface SshConfigHost {
  /** VM name (a DNS label); the host is `<name>.vm`. */
  name: string;
  ip: string;
}

/** The suffix that routes a host name to banger's VMs. */
export const VM_HOST_SUFFIX = '.vm';

export const BLOCK_START = '# >>> banger >>>';
export const BLOCK_END = '# <<< banger <<<';

/** The user's ssh config, as OpenSSH finds it for `home`. */
export function userSshConfigPath(home: string): string {
  return join(home, '.ssh', 'config');
}

/**
 * banger's ssh_config. VM host keys are pinned by banger itself (by address)
 * before first use, so ssh checks strictly against banger's known_hosts
 * only, and never learns or asks about a key. Hosts come out sorted by name,
 * so the same VMs always give the same bytes.
 */
export function renderSshConfig(options: { keyPath: string; knownHosts: string; hosts: readonly SshConfigHost[] }): string {
  const lines = [
    '# Written by bangerd as VMs start and stop; edits are lost. `ssh root@<name>.vm` reaches a running VM.',
    '# ~/.ssh/config reads this file only after `banger ssh-config --install`.',
    '',
  ];
  for (const host of [...options.hosts].sort((a, b) => a.name.localeCompare(b.name))) {
    // A VM name is a DNS label; anything else could inject ssh_config directives.
    if (!VM_NAME.check(host.name).ok) throw new BangerError('ERR_SSH_CONFIG', `${describeValue(host.name)} cannot be an ssh_config host name`);
    if (isIP(host.ip) === 0) throw new BangerError('ERR_SSH_CONFIG', `"${host.ip}" (VM ${host.name}) is not an IP address`);
    lines.push(`Host ${host.name}${VM_HOST_SUFFIX}`, `  HostName ${host.ip}`, '');
  }
  lines.push(
    `Host *${VM_HOST_SUFFIX}`,
    '  User root',
    `  IdentityFile ${sshConfigWord(escapePercent(options.keyPath))}`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile ${sshConfigWord(escapePercent(options.knownHosts))}`,
    // Only banger's pins count: a system-wide entry for a recycled guest address must not interfere.
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  LogLevel ERROR',
  );
  return lines.join('\n') + '\n';
}

/**
 * One ssh_config argument: bare when it is plain, else double-quoted with
 * `"` and `\` backslash-escaped (OpenSSH's argument splitting undoes both).
 * A newline cannot be written at all.
 */
export function sshConfigWord(value: string): string {
  if (/[\n\r\0]/.test(value)) throw new BangerError('ERR_SSH_CONFIG', `cannot write ${JSON.stringify(value)} into an ssh_config: it holds a line break`);
  if (value !== '' && !/[\s"'\\#=]/.test(value)) return value;
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** IdentityFile and UserKnownHostsFile expand `%` tokens; `%%` is a literal `%`. */
function escapePercent(path: string): string {
  return path.replaceAll('%', '%%');
}

/** Include expands globs: `*?[]\` are escaped so the path names exactly one file. */
function escapeGlob(path: string): string {
  return path.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/** The line that makes ssh read banger's file. */
export function includeLine(bangerConfig: string): string {
  if (!isAbsolute(bangerConfig)) throw new BangerError('ERR_SSH_CONFIG', `the included ssh_config must be an absolute path, got ${bangerConfig}`);
  return `Include ${sshConfigWord(escapeGlob(bangerConfig))}`;
}

function includeBlock(bangerConfig: string): string {
  return (
    [BLOCK_START, '# Added by `banger ssh-config --install`; `banger ssh-config --uninstall` removes it.', includeLine(bangerConfig), BLOCK_END].join('\n') +
    '\n'
  );
}

/**
 * Writes banger's ssh_config atomically (a temp file in the same directory,
 * then rename), at 0600 (ssh ignores a config others can write), creating
 * its directory at 0700. Unchanged content is not rewritten. Failures are
 * ERR_SSH_CONFIG.
 */
export function writeSshConfigFile(path: string, text: string): { changed: boolean } {
  try {
    try {
      if (readFileSync(path, 'utf8') === text && (statSync(path).mode & 0o777) === 0o600) return { changed: false };
    } catch (error) {
      if (!hasErrnoCode(error, 'ENOENT')) throw error;
    }
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    writeAtomic(path, Buffer.from(text, 'utf8'), 0o600);
    return { changed: true };
  } catch (error) {
    throw new BangerError('ERR_SSH_CONFIG', `cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      hint: `check that ${dirname(path)} is a directory you can write`,
    });
  }
}

/**
 * Puts the marker-fenced Include of `bangerConfig` at the top of the user's
 * ssh config (an Include only applies to every host from before the first
 * Host/Match line, and ssh takes the first value it finds for an option).
 * Idempotent: a block that is already there and current is left alone,
 * wherever the user moved it; one naming another path is replaced in place.
 * A missing `~/.ssh` (0700) and config (0600) are created. A symlinked
 * config (dotfile managers) is edited at its target and stays a symlink.
 */
export function installInclude(userSshConfig: string, bangerConfig: string): { changed: boolean } {
  const block = byteString(includeBlock(bangerConfig));
  const target = resolveTarget(userSshConfig);
  const current = readIfExists(target);
  if (current === undefined) {
    try {
      mkdirSync(dirname(target), { recursive: true, mode: 0o700 });
      writeAtomic(target, Buffer.from(block, 'latin1'), 0o600);
    } catch (error) {
      throw writeError(target, bangerConfig, error);
    }
    return { changed: true };
  }
  const found = findBlock(current, target);
  const next = found === undefined ? block + current : current.slice(0, found.start) + block + current.slice(found.end);
  if (next === current) return { changed: false };
  try {
    writeAtomic(target, Buffer.from(next, 'latin1'), statSync(target).mode & 0o7777);
  } catch (error) {
    throw writeError(target, bangerConfig, error);
  }
  return { changed: true };
}

/**
 * Takes banger's block out of the user's ssh config, byte for byte what
 * installInclude put there; everything else stays. No file or no block:
 * nothing to do.
 */
export function uninstallInclude(userSshConfig: string, bangerConfig: string): { changed: boolean } {
  const target = resolveTarget(userSshConfig, { mayDangle: true });
  const current = readIfExists(target);
  if (current === undefined) return { changed: false };
  const found = findBlock(current, target);
  if (found === undefined) return { changed: false };
  try {
    writeAtomic(target, Buffer.from(current.slice(0, found.start) + current.slice(found.end), 'latin1'), statSync(target).mode & 0o7777);
  } catch (error) {
    throw writeError(target, bangerConfig, error);
  }
  return { changed: true };
}

/**
 * True when the user's ssh config includes `bangerConfig`: banger's block, or
 * an Include line of the user's own naming the file (quoted, escaped, `~/`
 * or relative to ~/.ssh all count; a glob that happens to match does not).
 */
export function includeInstalled(userSshConfig: string, bangerConfig: string): boolean {
  let current: string | undefined;
  try {
    current = readIfExists(resolveTarget(userSshConfig, { mayDangle: true }));
  } catch {
    return false;
  }
  if (current === undefined) return false;
  const sshDir = byteString(dirname(userSshConfig));
  const home = dirname(sshDir);
  const wanted = byteString(bangerConfig);
  return current.split('\n').some((line) => {
    const [keyword, ...args] = splitSshConfigLine(line);
    if (keyword?.toLowerCase() !== 'include') return false;
    return args.some((arg) => {
      const path = arg.replace(/\\(.)/g, '$1'); // glob escapes
      const absolute = path.startsWith('~/') ? join(home, path.slice(2)) : isAbsolute(path) ? path : join(sshDir, path);
      return absolute === wanted;
    });
  });
}

/**
 * A config line's words as OpenSSH splits them: whitespace (or one `=`
 * after the keyword) separates, `"…"` and `'…'` group, a backslash escapes
 * a quote, a backslash or (outside quotes) a space, and a word starting with
 * `#` ends the line.
 */
function splitSshConfigLine(line: string): string[] {
  const words: string[] = [];
  let i = 0;
  const text = line.replace(/\r$/, '');
  while (i < text.length) {
    // The keyword may be followed by `=` instead of (or as well as) whitespace.
    const separator = words.length === 1 ? /[ \t=]/ : /[ \t]/;
    while (i < text.length && separator.test(text.charAt(i))) i++;
    if (i >= text.length || text.charAt(i) === '#') break;
    let word = '';
    let quote = '';
    for (; i < text.length; i++) {
      const c = text.charAt(i);
      const next = text.charAt(i + 1);
      if (c === '\\' && (next === '"' || next === "'" || next === '\\' || (quote === '' && next === ' '))) {
        word += next;
        i++;
      } else if (quote !== '' && c === quote) quote = '';
      else if (quote === '' && (c === '"' || c === "'")) quote = c;
      else if (quote === '' && (/[ \t]/.test(c) || (words.length === 0 && c === '='))) break;
      else word += c;
    }
    words.push(word);
  }
  return words;
}

/** Where the block is: from its first line's start to just past its last line's end. */
function findBlock(text: string, path: string): { start: number; end: number } | undefined {
  const lines = lineSpans(text);
  const startIndex = lines.findIndex((l) => l.content === BLOCK_START);
  if (startIndex < 0) return undefined;
  const endIndex = lines.findIndex((l, i) => i > startIndex && l.content === BLOCK_END);
  if (endIndex < 0) {
    throw new BangerError('ERR_SSH_CONFIG', `${path} has a "${BLOCK_START}" line without its "${BLOCK_END}"`, {
      hint: `edit ${path}: remove the broken banger block by hand, then run the command again`,
    });
  }
  return { start: lines[startIndex]?.start ?? 0, end: lines[endIndex]?.end ?? text.length };
}

/** Each line's text (without its \n or \r\n) and its byte span including the line break. */
function lineSpans(text: string): { content: string; start: number; end: number }[] {
  const spans: { content: string; start: number; end: number }[] = [];
  let start = 0;
  while (start < text.length) {
    const newline = text.indexOf('\n', start);
    const end = newline < 0 ? text.length : newline + 1;
    spans.push({ content: text.slice(start, newline < 0 ? end : newline).replace(/\r$/, ''), start, end });
    start = end;
  }
  return spans;
}

/**
 * The file to edit: the config itself, or the target of a symlinked one
 * (replacing the link with a file would quietly detach it from the user's
 * dotfiles). A dangling link is refused, except where nothing is written.
 */
function resolveTarget(path: string, options: { mayDangle?: boolean } = {}): string {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT')) return path;
    throw new BangerError('ERR_SSH_CONFIG', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
  if (!stat.isSymbolicLink()) return path;
  try {
    return realpathSync(path);
  } catch (error) {
    if (options.mayDangle === true && hasErrnoCode(error, 'ENOENT')) return path;
    throw new BangerError('ERR_SSH_CONFIG', `${path} is a symlink to a file that does not exist`, {
      cause: error,
      hint: `create the file it points to (or remove the link), then run the command again`,
    });
  }
}

/**
 * The user's file is handled as a byte string (latin1 maps each byte to one
 * character and back), so bytes that are not UTF-8 survive an edit exactly;
 * banger's own lines are converted to the same form from their UTF-8 bytes.
 */
function byteString(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}

/** The file's bytes as a byte string, or undefined when it does not exist (a dangling symlink counts as not existing). */
function readIfExists(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1');
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT')) return undefined;
    throw new BangerError('ERR_SSH_CONFIG', `cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function writeError(path: string, bangerConfig: string, error: unknown): BangerError {
  if (error instanceof BangerError) return error;
  return new BangerError('ERR_SSH_CONFIG', `cannot write ${path}: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
    hint: `add this line at the top of ${path} yourself: ${includeLine(bangerConfig)}`,
  });
}

/**
 * Replaces `path` with `data` all at once: readers see the old file or the
 * new one, never half of either, and a crash leaves at worst a stray temp
 * file next to it.
 */
function writeAtomic(path: string, data: Buffer, mode: number): void {
  const temp = join(dirname(path), `.${basename(path)}.banger-${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(temp, 'wx', mode);
  try {
    try {
      writeFileSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(temp, mode); // openSync's mode is filtered by the umask
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}
