import { closeSync, fstatSync, ftruncateSync, openSync, readSync, renameSync, writeSync } from 'node:fs';

import { ROTATED_SUFFIX } from '../../config/filenames.js';

/**
 * A byte log kept in two generations: `<path>` (the newest bytes) and
 * `<path>.1` (the ones before), each at most `capBytes`, so the pair never
 * takes more than twice the cap on disk. Read back together, `.1` then the
 * current file, they are one stream: rotation cuts at the exact byte, even
 * inside a line, and the tail reader joins the pieces again.
 */

/** The previous generation of a rotating log. */
export function rotatedPath(path: string): string {
  return path + ROTATED_SUFFIX;
}

/**
 * Appends to `path`, rotating it to `<path>.1` (replacing the previous one)
 * whenever the next byte would pass the cap. Writes are synchronous: bytes
 * handed to write() are in the file when it returns, so a reader of the tail
 * sees everything received so far. Errors (a full disk, the directory gone)
 * are thrown to the caller.
 */
export class RotatingLog {
  readonly path: string;
  readonly capBytes: number;
  #fd: number;
  #size: number;

  constructor(path: string, capBytes: number) {
    if (!Number.isInteger(capBytes) || capBytes < 1) throw new RangeError(`log cap must be a positive integer, not ${capBytes}`);
    this.path = path;
    this.capBytes = capBytes;
    this.#fd = openSync(path, 'a', 0o600);
    this.#size = fstatSync(this.#fd).size;
  }

  /** Bytes in the current generation. */
  get size(): number {
    return this.#size;
  }

  write(data: Uint8Array): void {
    let rest = data;
    while (rest.length > 0) {
      if (this.#size >= this.capBytes) this.#rotate();
      const room = Math.min(this.capBytes - this.#size, rest.length);
      let written = 0;
      while (written < room) written += writeSync(this.#fd, rest, written, room - written);
      this.#size += room;
      rest = rest.subarray(room);
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  /**
   * The current file becomes `.1`. A current file over the cap (left by an
   * older banger that did not cap it, or by a larger cap) keeps only its
   * last `capBytes` there, so the bound holds from the first rotation on.
   */
  #rotate(): void {
    closeSync(this.#fd);
    const oversize = this.#size > this.capBytes;
    const rotated = rotatedPath(this.path);
    renameSync(this.path, rotated);
    if (oversize) keepTail(rotated, this.capBytes);
    this.#fd = openSync(this.path, 'a', 0o600);
    this.#size = 0;
  }
}

/** Cuts a file down to its last `bytes` bytes, in place (it is nobody's open file any more). */
function keepTail(path: string, bytes: number): void {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size <= bytes) return;
    const tail = Buffer.alloc(bytes);
    readFully(fd, tail, size - bytes);
    let written = 0;
    while (written < bytes) written += writeSync(fd, tail, written, bytes - written, written);
    ftruncateSync(fd, bytes);
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, buffer: Buffer, position: number): void {
  let read = 0;
  while (read < buffer.length) {
    const n = readSync(fd, buffer, read, buffer.length - read, position + read);
    if (n === 0) throw new Error('file shrank while being read');
    read += n;
  }
}

/** How much the tail reader reads per step, going backwards. */
const TAIL_BLOCK_BYTES = 64 * 1024;

/**
 * The last `lines` non-blank lines of a rotating log (current file, then
 * `.1` before it), reading backwards from the end and never more than
 * `maxBytes` in all: a log of any size (an uncapped one left by an older
 * banger included) costs at most that much memory and I/O. Lines lose a
 * trailing `\r` (the guest's serial console ends lines with `\r\n`). The
 * first line of what was read is dropped when the read stopped before the
 * start of the log, as it may be the end of a longer one. `bytesRead` says
 * how much was read.
 */
export function readTailLines(path: string, lines: number, maxBytes: number): { lines: string[]; bytesRead: number } {
  if (lines <= 0) return { lines: [], bytesRead: 0 };
  const chunks: Buffer[] = [];
  let bytesRead = 0;
  let newlines = 0;
  let reachedStart = true;
  let newestInode: number | undefined;
  files: for (const file of [path, rotatedPath(path)]) {
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw error;
    }
    try {
      const stat = fstatSync(fd);
      // Rotated between the two opens: `.1` is the file already read as the current one.
      if (stat.ino === newestInode) continue;
      newestInode ??= stat.ino;
      let position = stat.size;
      while (position > 0) {
        if (bytesRead >= maxBytes) {
          reachedStart = false;
          break files;
        }
        const n = Math.min(TAIL_BLOCK_BYTES, position, maxBytes - bytesRead);
        position -= n;
        const block = Buffer.alloc(n);
        readFully(fd, block, position);
        chunks.unshift(block);
        bytesRead += n;
        for (let i = block.indexOf(0x0a); i >= 0; i = block.indexOf(0x0a, i + 1)) newlines++;
        // Enough complete lines (those after the first newline) already: stop reading.
        if (newlines > lines && completeLines(chunks).length >= lines) {
          reachedStart = false;
          break files;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  const all = reachedStart ? splitLines(Buffer.concat(chunks)) : completeLines(chunks);
  return { lines: all.slice(-lines), bytesRead };
}

/** The non-blank lines after the first newline of what was read (the part before it may be a partial line). */
function completeLines(chunks: readonly Buffer[]): string[] {
  const data = Buffer.concat(chunks);
  const first = data.indexOf(0x0a);
  return first < 0 ? [] : splitLines(data.subarray(first + 1));
}

function splitLines(data: Buffer): string[] {
  return data
    .toString('utf8')
    .split('\n')
    .map((line) => (line.endsWith('\r') ? line.slice(0, -1) : line))
    .filter((line) => line.trim() !== '');
}
