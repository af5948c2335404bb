import { open } from 'node:fs/promises';

/**
 * Reads the member headers of an uncompressed tar file (ustar, GNU long
 * names, POSIX pax: what GNU tar and mmdebstrap write) without reading the
 * members' data. Image packing needs only this: sizes to size the ext4, and
 * the device nodes, which cannot be created inside a user namespace and are
 * recreated in the image afterwards.
 */

export type TarMemberType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo' | 'other';

export interface TarMember {
  /** As stored, e.g. `./etc/passwd` (pax and GNU long names applied). */
  name: string;
  type: TarMemberType;
  /** Data size in bytes (0 for everything but regular files). */
  size: number;
  /** Permission bits including setuid/setgid/sticky (07777). */
  mode: number;
  uid: number;
  gid: number;
  /** Symlink or hard link target. */
  linkName: string;
  devMajor: number;
  devMinor: number;
  /** Where the member's first header block starts (its pax or GNU long-name entries included). */
  headerOffset: number;
  /** Where its ustar header block starts (after any pax or GNU long-name entries). */
  mainHeaderOffset: number;
  /** Where its data starts; the data takes `size` bytes, padded to 512. */
  dataOffset: number;
  /** Its pax records (GNU long names given as `path`/`linkpath`), e.g. `SCHILY.xattr.*`. */
  pax: Readonly<Record<string, string>>;
}

const BLOCK = 512;

const TYPES: Record<string, TarMemberType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

/** Lists the members of the tar file at `path`, in order. Throws on a malformed archive. */
export async function readTarIndex(path: string): Promise<TarMember[]> {
  const file = await open(path, 'r');
  try {
    const members: TarMember[] = [];
    const header = Buffer.alloc(BLOCK);
    let offset = 0;
    /** Overrides from a pax extended header or GNU long-name entry, applied to the next member. */
    let pending: Record<string, string> = {};
    let headerOffset = 0;
    for (;;) {
      const { bytesRead } = await file.read(header, 0, BLOCK, offset);
      if (bytesRead === 0) break; // no end-of-archive blocks: tolerated, as GNU tar does
      if (bytesRead < BLOCK) throw new Error(`${path}: truncated tar header at offset ${offset}`);
      if (header.every((byte) => byte === 0)) break;
      verifyChecksum(header, path, offset);
      const typeflag = String.fromCharCode(header[156] ?? 0);
      const size = numeric(header, 124, 12);
      const dataOffset = offset + BLOCK;
      offset = dataOffset + Math.ceil(size / BLOCK) * BLOCK;
      if (typeflag === 'x' || typeflag === 'L' || typeflag === 'K') {
        const data = Buffer.alloc(size);
        await file.read(data, 0, size, dataOffset);
        if (typeflag === 'x') pending = { ...pending, ...parsePax(data, path) };
        else pending[typeflag === 'L' ? 'path' : 'linkpath'] = cString(data, 0, size);
        continue;
      }
      if (typeflag === 'g') {
        headerOffset = offset; // global pax header: nothing banger needs
        continue;
      }
      const prefix = header.subarray(257, 263).toString('latin1') === 'ustar\0' ? cString(header, 345, 155) : '';
      const base = cString(header, 0, 100);
      members.push({
        name: pending.path ?? (prefix === '' ? base : `${prefix}/${base}`),
        type: TYPES[typeflag] ?? 'other',
        size: pending.size === undefined ? size : Number(pending.size),
        mode: numeric(header, 100, 8) & 0o7777,
        uid: pending.uid === undefined ? numeric(header, 108, 8) : Number(pending.uid),
        gid: pending.gid === undefined ? numeric(header, 116, 8) : Number(pending.gid),
        linkName: pending.linkpath ?? cString(header, 157, 100),
        devMajor: numeric(header, 329, 8),
        devMinor: numeric(header, 337, 8),
        headerOffset,
        mainHeaderOffset: dataOffset - BLOCK,
        dataOffset,
        pax: pending,
      });
      pending = {};
      headerOffset = offset;
    }
    return members;
  } finally {
    await file.close();
  }
}

/** A NUL-terminated field as a string (bytes kept as UTF-8, which is what GNU tar stores). */
export function cString(buffer: Buffer, start: number, length: number): string {
  const field = buffer.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

/** A numeric field: octal text, or GNU's base-256 (high bit set) for values octal cannot hold; NaN when it is neither. */
export function numeric(buffer: Buffer, start: number, length: number): number {
  const first = buffer[start] ?? 0;
  if ((first & 0x80) !== 0) {
    let value = first & 0x7f;
    for (let i = start + 1; i < start + length; i++) value = value * 256 + (buffer[i] ?? 0);
    return value;
  }
  const text = cString(buffer, start, length).trim();
  return text === '' ? 0 : /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
}

/** Whether a header block's checksum field matches its bytes. */
export function headerChecksumOk(header: Buffer): boolean {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  return sum === numeric(header, 148, 8);
}

function verifyChecksum(header: Buffer, path: string, offset: number): void {
  if (!headerChecksumOk(header)) throw new Error(`${path}: bad tar header checksum at offset ${offset}`);
}

/** Pax extended header records: "<length> <key>=<value>\n", the length counting the whole record. */
export function parsePax(data: Buffer, path: string): Record<string, string> {
  const records: Record<string, string> = {};
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    const length = space === -1 ? NaN : Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isSafeInteger(length) || length <= 0 || at + length > data.length) throw new Error(`${path}: malformed pax header`);
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records[record.slice(0, equals)] = record.slice(equals + 1);
    at += length;
  }
  return records;
}
