import { existsSync, mkdirSync, readdirSync, renameSync, rmdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { STAGING_PREFIX } from '../config/filenames.js';

/**
 * Build-then-publish for artifact directories (`kernels/<id>`, `images/<id>`).
 * The work happens in `<parent>/.staging-<id>`, which is renamed to
 * `<parent>/<id>` and then recorded. Any failure (or cancel) removes both,
 * so nothing half-built is ever visible or left behind; a crash leaves only
 * a staging dir, which `sweepStaging` removes at the next daemon start.
 */
export async function publishStaged<T, R>(
  parent: string,
  id: string,
  build: (staging: string) => Promise<T>,
  record: (final: string, built: T) => R,
  signal?: AbortSignal,
): Promise<R> {
  const createdParent = mkdirSync(parent, { recursive: true, mode: 0o700 }) !== undefined;
  const staging = join(parent, `${STAGING_PREFIX}${id}`);
  const final = join(parent, id);
  mkdirSync(staging);
  let published = false;
  try {
    const built = await build(staging);
    signal?.throwIfAborted();
    renameSync(staging, final);
    try {
      const result = record(final, built);
      published = true;
      return result;
    } catch (error) {
      rmSync(final, { recursive: true, force: true });
      throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
    // A failed first build leaves no empty parent behind either. rmdir only removes an empty
    // dir, so a build running beside this one (its staging dir inside) keeps the parent.
    if (!published && createdParent) removeIfEmpty(parent);
  }
}

function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Not empty (another build uses it) or already gone: either way nothing to undo.
  }
}

/** Removes staging dirs a crashed daemon left in `parent`. */
export function sweepStaging(parent: string): void {
  if (!existsSync(parent)) return;
  for (const entry of readdirSync(parent)) {
    if (entry.startsWith(STAGING_PREFIX)) rmSync(join(parent, entry), { recursive: true, force: true });
  }
}
