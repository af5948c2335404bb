import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';

/**
 * A POSIX tar (ustar, with pax records for long names and large sizes)
 * written straight from the host's files, for `tar -x` in the guest.
 *
 * Written here rather than by spawning the host's tar: names come from a
 * repo's index, and a file list fed to tar could carry option-looking names;
 * here a name is only ever a name. Every entry is owned by root (uid/gid 0),
 * since the guest extracts as root; modes and mtimes are kept (git's stat
 * checks use mtimes).
 */

const BLOCK = 512;
const SMALL_FILE = 1024 * 1024;

/** A file, directory or symlink read from the host, or a small file given by its bytes. */
export type TarEntry =
  | {
      /** Name inside the archive (no leading slash). */
      name: string;
      /** Where to read it on the host. */
      source: string;
    }
  | { name: string; content: Buffer; mode: number };

type EntryKind = { type: 'file'; size: number } | { type: 'dir' } | { type: 'symlink'; target: string };

interface HeaderFields {
  name: string;
  mode: number;
  mtime: number;
  kind: EntryKind;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function writeString(block: Buffer, offset: number, width: number, value: string): void {
  block.write(value, offset, Math.min(width, Buffer.byteLength(value)), 'utf8');
}

function rawHeader(name: string, mode: number, size: number, mtime: number, typeflag: string, linkname: string): Buffer {
  const block = Buffer.alloc(BLOCK);
  writeString(block, 0, 100, name);
  writeString(block, 100, 8, octal(mode & 0o7777, 8));
  writeString(block, 108, 8, octal(0, 8));
  writeString(block, 116, 8, octal(0, 8));
  writeString(block, 124, 12, octal(size, 12));
  writeString(block, 136, 12, octal(Math.max(0, Math.floor(mtime)), 12));
  block.fill(0x20, 148, 156);
  writeString(block, 156, 1, typeflag);
  writeString(block, 157, 100, linkname);
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeString(block, 265, 32, 'root');
  writeString(block, 297, 32, 'root');
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return block;
}

/** One pax record: "<len> <key>=<value>\n", where len counts the whole record. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const base = Buffer.byteLength(body);
  let length = base + 1;
  while (length !== base + String(length).length) length = base + String(length).length;
  return `${length}${body}`;
}

const MAX_OCTAL_SIZE = 0o77777777777;

/** The header blocks of one entry (a pax header first when a field does not fit ustar). */
export function entryHeader(fields: HeaderFields): Buffer {
  const { name, kind } = fields;
  const size = kind.type === 'file' ? kind.size : 0;
  const linkname = kind.type === 'symlink' ? kind.target : '';
  const records: string[] = [];
  if (Buffer.byteLength(name) > 100) records.push(paxRecord('path', name));
  if (Buffer.byteLength(linkname) > 100) records.push(paxRecord('linkpath', linkname));
  if (size > MAX_OCTAL_SIZE) records.push(paxRecord('size', String(size)));
  const typeflag = kind.type === 'file' ? '0' : kind.type === 'dir' ? '5' : '2';
  const main = rawHeader(truncateUtf8(name, 100), fields.mode, size > MAX_OCTAL_SIZE ? 0 : size, fields.mtime, typeflag, truncateUtf8(linkname, 100));
  if (records.length === 0) return main;
  return Buffer.concat([paxBlocks(records.join(''), fields.mtime), main]);
}

function paxBlocks(records: string, mtime: number): Buffer {
  const pax = Buffer.from(records, 'utf8');
  return Buffer.concat([rawHeader('PaxHeader', 0o644, pax.length, mtime, 'x', ''), pax, padding(pax.length)]);
}

/** A pax extended header (`x`, whole blocks) carrying `records` for the member that follows it. */
export function paxExtendedHeader(records: Readonly<Record<string, string>>): Buffer {
  return paxBlocks(
    Object.entries(records)
      .map(([key, value]) => paxRecord(key, value))
      .join(''),
    0,
  );
}

function truncateUtf8(value: string, bytes: number): string {
  const buffer = Buffer.from(value, 'utf8');
  return buffer.length <= bytes
    ? value
    : buffer
        .subarray(0, bytes)
        .toString('utf8')
        .replace(/\uFFFD$/, '');
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

/** Every entry under `dir` (directories before their contents), as names under `prefix`; `skip` filters by relative path. */
export async function walkTree(dir: string, prefix: string, skip: (relative: string) => boolean = () => false): Promise<TarEntry[]> {
  const entries: TarEntry[] = [{ name: prefix, source: dir }];
  const visit = async (relative: string): Promise<void> => {
    const children = await readdir(join(dir, relative), { withFileTypes: true });
    children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const child of children) {
      const rel = relative === '' ? child.name : `${relative}/${child.name}`;
      if (skip(rel)) continue;
      entries.push({ name: `${prefix}/${rel}`, source: join(dir, rel) });
      if (child.isDirectory()) await visit(rel);
    }
  };
  await visit('');
  return entries;
}

/**
 * The archive as a byte stream, read lazily (backpressure reaches the disk).
 * Entries that vanished or are neither file, directory nor symlink are
 * skipped. A file that changes size while being read is cut or zero-padded to
 * the size in its header, so the archive stays well-formed.
 */
export function tarStream(entries: readonly TarEntry[], onBytes?: (total: number) => void): Readable {
  let total = 0;
  const count = (chunk: Buffer): Buffer => {
    total += chunk.length;
    onBytes?.(total);
    return chunk;
  };
  return Readable.from(coalesce(entryChunks(entries, count), COALESCE_BYTES), { objectMode: false, highWaterMark: 256 * 1024 });
}

/**
 * Source trees are mostly small files: a header, a few KiB, padding. Written
 * one by one, each would become its own SSH packet, and under emulation the
 * guest pays per packet; chunks are joined up to this size first.
 */
const COALESCE_BYTES = 128 * 1024;

async function* coalesce(chunks: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of chunks) {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= size) {
      yield pending.length === 1 ? chunk : Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

async function* entryChunks(entries: readonly TarEntry[], count: (chunk: Buffer) => Buffer): AsyncGenerator<Buffer> {
  for (const entry of entries) {
    if ('content' in entry) {
      yield count(entryHeader({ name: entry.name, mode: entry.mode, mtime: Date.now() / 1000, kind: { type: 'file', size: entry.content.length } }));
      if (entry.content.length > 0) yield count(entry.content);
      const pad = padding(entry.content.length);
      if (pad.length > 0) yield count(pad);
      continue;
    }
    let stat;
    try {
      stat = await lstat(entry.source);
    } catch {
      continue;
    }
    const common = { name: entry.name, mode: stat.mode, mtime: stat.mtimeMs / 1000 };
    if (stat.isDirectory()) {
      yield count(entryHeader({ ...common, name: `${entry.name}/`, kind: { type: 'dir' } }));
    } else if (stat.isSymbolicLink()) {
      yield count(entryHeader({ ...common, kind: { type: 'symlink', target: await readlink(entry.source) } }));
    } else if (stat.isFile()) {
      yield count(entryHeader({ ...common, kind: { type: 'file', size: stat.size } }));
      yield* fileBody(entry.source, stat.size, count);
    }
  }
  yield count(Buffer.alloc(BLOCK * 2));
}

async function* fileBody(path: string, size: number, count: (chunk: Buffer) => Buffer): AsyncGenerator<Buffer> {
  let sent = 0;
  if (size <= SMALL_FILE) {
    let data: Buffer;
    try {
      data = await readFile(path);
    } catch {
      data = Buffer.alloc(0);
    }
    const body = data.subarray(0, size);
    sent = body.length;
    if (body.length > 0) yield count(body);
  } else if (size > 0) {
    const stream = createReadStream(path, { start: 0, end: size - 1, highWaterMark: 256 * 1024 });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        sent += chunk.length;
        yield count(chunk);
      }
    } catch {
      // Unreadable midway: pad below keeps the archive well-formed.
    }
  }
  if (sent < size) yield count(Buffer.alloc(size - sent));
  const pad = padding(size);
  if (pad.length > 0) yield count(pad);
}
