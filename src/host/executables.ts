import { accessSync, constants, closeSync, openSync, readSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/**
 * Directories searched after $PATH: root-only tools (mkfs.ext4, e2fsck, ip)
 * live in sbin directories that an ordinary user's PATH often lacks.
 */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'];

/** Absolute path of an executable found on PATH (or the sbin dirs), or undefined. */
export function findExecutable(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (isAbsolute(name)) return isExecutable(name) ? name : undefined;
  const dirs = [...(env.PATH ?? '').split(delimiter).filter((d) => d !== ''), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

const PT_INTERP = 3;

/**
 * True when `path` is a statically linked ELF executable (no PT_INTERP program
 * header). banger copies busybox into guest initramfs images, where no dynamic
 * loader exists, so only a static busybox will do.
 */
export function isStaticElf(path: string): boolean {
  const interpreter = readInterpreter(path);
  return interpreter === null;
}

/** The dynamic loader an x86_64 ELF program names (PT_INTERP), or undefined for a static or non-ELF file. */
export function elfInterpreter(path: string): string | undefined {
  return readInterpreter(path) ?? undefined;
}

/** PT_INTERP's path; null for a static 64-bit little-endian ELF; undefined when not one at all. */
function readInterpreter(path: string): string | null | undefined {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    readSync(fd, header, 0, 64, 0);
    if (header.readUInt32BE(0) !== 0x7f454c46) return undefined; // "\x7fELF"
    if (header[4] !== 2 || header[5] !== 1) return undefined; // 64-bit little-endian only (x86_64)
    const phoff = Number(header.readBigUInt64LE(0x20));
    const phentsize = header.readUInt16LE(0x36);
    const phnum = header.readUInt16LE(0x38);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const entry = i * phentsize;
      if (table.readUInt32LE(entry) !== PT_INTERP) continue;
      const offset = Number(table.readBigUInt64LE(entry + 8));
      const size = Number(table.readBigUInt64LE(entry + 32));
      const interp = Buffer.alloc(Math.min(size, 4096));
      readSync(fd, interp, 0, interp.length, offset);
      return interp.toString('latin1').replace(/\0.*$/s, '');
    }
    return null;
  } finally {
    closeSync(fd);
  }
}
