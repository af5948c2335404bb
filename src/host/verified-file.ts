import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';

import type { BangerError } from '../rpc/errors.js';

/**
 * Content-addressed files: a file is published under its name only once its
 * bytes hashed to the sha256 it must have, so a cache never holds a partial
 * or wrong file, whether the transfer failed, timed out, was cancelled or was
 * corrupt. Used by Debian downloads and the OCI blob cache.
 */

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** Whether `path` holds a file with this sha256 (hex); one that does not match is removed. */
export async function hasVerifiedFile(path: string, sha256: string): Promise<boolean> {
  try {
    statSync(path);
  } catch {
    return false;
  }
  if ((await sha256File(path)) === sha256) return true;
  rmSync(path, { force: true });
  return false;
}

/**
 * Writes `target`, whose content must hash to `sha256` (hex): `fill` opens
 * the temp file beside `target` with `openSink` and reports each chunk it
 * writes through `onChunk`; the file is renamed into place only when the hash
 * matched, else `mismatch(actual)` is thrown. The temp file never outlives
 * the call: every sink opened is closed before it is removed, because a
 * write stream opens its file asynchronously and a request that fails fast
 * (an HTTP 404) would otherwise see the file created after the removal.
 */
export async function writeVerifiedFile(
  target: string,
  sha256: string,
  fill: (openSink: () => WriteStream, onChunk: (chunk: Buffer) => void) => Promise<void>,
  mismatch: (actual: string) => BangerError,
): Promise<void> {
  const partial = `${target}.partial-${process.pid}-${Date.now()}`;
  const sinks: WriteStream[] = [];
  try {
    const hash = createHash('sha256');
    await fill(
      () => {
        const sink = createWriteStream(partial, { mode: 0o600 });
        sinks.push(sink);
        return sink;
      },
      (chunk) => hash.update(chunk),
    );
    await Promise.all(sinks.map(closed));
    const actual = hash.digest('hex');
    if (actual !== sha256) throw mismatch(actual);
    renameSync(partial, target);
  } finally {
    await Promise.all(sinks.map(closed));
    rmSync(partial, { force: true });
  }
}

/** Resolves once `stream` has closed its file, destroying it first when it is still open or opening. */
function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('close', () => {
      resolve();
    });
    stream.once('error', () => undefined);
    stream.destroy();
  });
}

/** How a resumable fill writes: from where the kept bytes end (append), or from the start. */
export type ResumableSink = (from: 'kept' | 'start') => WriteStream;

/**
 * Like writeVerifiedFile, but a transfer that fails part way keeps what it
 * wrote in `partial`, and the next call resumes from there: `fill` gets the
 * number of bytes already kept and opens the sink to append to them (after a
 * ranged request the server honoured) or to start over. The kept bytes are
 * hashed before new ones, so the file is still verified whole. When a resumed
 * file does not hash right (the kept part was bad) it is removed and fetched
 * once more from the start; a file fetched from the start that does not hash
 * right is removed and `mismatch` thrown. `target` appears only verified.
 * Callers must not run two calls for one `partial` at once (see
 * RegistryClient, which runs one per blob).
 */
export async function writeResumableFile(
  target: string,
  sha256: string,
  partial: string,
  fill: (kept: number, openSink: ResumableSink, onChunk: (chunk: Buffer) => void) => Promise<void>,
  mismatch: (actual: string) => BangerError,
): Promise<void> {
  mkdirSync(dirname(partial), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    let kept: number;
    try {
      kept = statSync(partial).size;
    } catch {
      kept = 0;
    }
    let hash = createHash('sha256');
    if (kept > 0) for await (const chunk of createReadStream(partial) as AsyncIterable<Buffer>) hash.update(chunk);
    let fromStart = kept === 0;
    await fill(
      kept,
      (from) => {
        if (from === 'start') {
          fromStart = true;
          hash = createHash('sha256');
          return createWriteStream(partial, { mode: 0o600, flags: 'w' });
        }
        return createWriteStream(partial, { mode: 0o600, flags: 'a' });
      },
      (chunk) => hash.update(chunk),
    );
    const actual = hash.digest('hex');
    if (actual === sha256) {
      renameSync(partial, target);
      return;
    }
    rmSync(partial, { force: true });
    if (fromStart) throw mismatch(actual);
  }
  throw mismatch('(still wrong after a fresh download)');
}
