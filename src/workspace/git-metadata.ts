import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { gitOk } from './git.js';
import { SHALLOW_FETCH_DEPTH } from './modes.js';
import type { RepoSnapshot } from './repo.js';
import { walkTree, type TarEntry } from './tar-writer.js';

/**
 * The `.git` a workspace ships, per mode:
 * - full_copy: the repo's own git dir, whole (history, refs, config, hooks,
 *   staged changes in the index, submodules' git dirs); lock files of a git
 *   running on the host right now are left out.
 * - shallow: a fresh repo holding only the last SHALLOW_FETCH_DEPTH commits
 *   of HEAD (and of --from), fetched from the host repo into a temp dir, with
 *   the same branch checked out. No remotes, hooks or host config travel, so
 *   nothing like a credential in a remote URL reaches the guest.
 */

export interface GitMetadata {
  entries: TarEntry[];
  /** Removes the temp dir (shallow); idempotent. */
  dispose(): void;
}

export async function gitMetadata(
  snapshot: RepoSnapshot,
  mode: 'shallow' | 'full_copy',
  extraCommits: readonly string[],
  signal?: AbortSignal,
): Promise<GitMetadata> {
  if (mode === 'full_copy') {
    return { entries: await walkTree(snapshot.gitDir, '.git', (rel) => rel.endsWith('.lock')), dispose: () => undefined };
  }
  const temp = mkdtempSync(join(tmpdir(), 'banger-shallow-'));
  const dispose = (): void => {
    rmSync(temp, { recursive: true, force: true });
  };
  try {
    const repo = join(temp, 'repo');
    await gitOk(temp, ['init', '--quiet', repo], signal);
    const commits = [...new Set([snapshot.head, ...extraCommits])];
    await gitOk(
      repo,
      ['-c', 'fetch.unpackLimit=1', 'fetch', '--quiet', '--no-tags', '--no-write-fetch-head', `--depth=${SHALLOW_FETCH_DEPTH}`, snapshot.root, ...commits],
      signal,
    );
    if (snapshot.branch === null) {
      await gitOk(repo, ['update-ref', '--no-deref', 'HEAD', snapshot.head], signal);
    } else {
      await gitOk(repo, ['update-ref', `refs/heads/${snapshot.branch}`, snapshot.head], signal);
      await gitOk(repo, ['symbolic-ref', 'HEAD', `refs/heads/${snapshot.branch}`], signal);
    }
    const gitDir = join(repo, '.git');
    return { entries: await walkTree(gitDir, '.git', (rel) => rel.startsWith('hooks/') && rel.endsWith('.sample')), dispose };
  } catch (error) {
    dispose();
    throw error;
  }
}
