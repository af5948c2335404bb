import { closeSync, openSync, readSync, statSync } from 'node:fs';

import { hasErrnoCode } from '../rpc/errors.js';

const TAIL_CHUNK = 256 * 1024;
const FOLLOW_POLL_MS = 250;

/** The last `count` lines of the log (all when Infinity) and the file size they end at. */
export function readLogTail(path: string, count: number): { lines: string[]; size: number } {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT')) return { lines: [], size: 0 };
    throw error;
  }
  if (count === 0) return { lines: [], size };
  const start = Number.isFinite(count) ? Math.max(0, size - TAIL_CHUNK * Math.ceil(count / 500)) : 0;
  const text = readRange(path, start, size);
  const lines = text.split('\n').filter((line) => line !== '');
  // A partial first line is only possible when we started mid-file.
  if (start > 0) lines.shift();
  return { lines: Number.isFinite(count) ? lines.slice(-count) : lines, size };
}

/** Prints lines appended after `offset` until the signal aborts. */
export async function followLog(path: string, offset: number, print: (line: string) => void, signal: AbortSignal): Promise<void> {
  let position = offset;
  let pending = '';
  while (!signal.aborted) {
    let size = position;
    try {
      size = statSync(path).size;
    } catch (error) {
      if (!hasErrnoCode(error, 'ENOENT')) throw error;
    }
    if (size < position) position = 0; // truncated or replaced
    if (size > position) {
      pending += readRange(path, position, size);
      position = size;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line !== '') print(line);
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, FOLLOW_POLL_MS);
      signal.addEventListener(
        'abort',
        () => {
          clearTimeout(timer);
          resolve();
        },
        { once: true },
      );
    });
  }
}

function readRange(path: string, start: number, end: number): string {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(end - start);
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, start + read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read).toString('utf8');
  } finally {
    closeSync(fd);
  }
}

const STANDARD_FIELDS = new Set(['level', 'time', 'pid', 'msg', 'op_id', 'method', 'hostname']);

/** `2026-11-22T23:10:24.123Z INFO  op_1a2b… daemon.ping request started ms=3` */
export function formatLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const parts = [typeof entry.time === 'string' ? entry.time : '', (typeof entry.level === 'string' ? entry.level : '?').toUpperCase().padEnd(5)];
  if (typeof entry.op_id === 'string') parts.push(entry.op_id);
  if (typeof entry.method === 'string') parts.push(entry.method);
  parts.push(typeof entry.msg === 'string' ? entry.msg : '');
  for (const [key, value] of Object.entries(entry)) {
    if (STANDARD_FIELDS.has(key) || value === undefined) continue;
    parts.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  return parts.filter((part) => part !== '').join(' ');
}
