import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
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
 * the temp file beside `target` with `openSink` once it has bytes to write
 * (not before: a request that fails first leaves no file behind) and
 * reports each chunk it writes through `onChunk`; the file is renamed into place only when the hash
 * matched, else `mismatch(actual)` is thrown. The temp file never outlives
 * the call.
 */
export async function writeVerifiedFile(
  target: string,
  sha256: string,
  fill: (openSink: () => WriteStream, onChunk: (chunk: Buffer) => void) => Promise<void>,
  mismatch: (actual: string) => BangerError,
): Promise<void> {
  const partial = `${target}.partial-${process.pid}-${Date.now()}`;
  try {
    const hash = createHash('sha256');
    await fill(
      () => createWriteStream(partial, { mode: 0o600 }),
      (chunk) => hash.update(chunk),
    );
    const actual = hash.digest('hex');
    if (actual !== sha256) throw mismatch(actual);
    renameSync(partial, target);
  } finally {
    rmSync(partial, { force: true });
  }
}
