import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { BangerError } from '../rpc/errors.js';
import { git, gitOk } from './git.js';
import { SHALLOW_FETCH_DEPTH } from './modes.js';
import type { RepoSnapshot } from './repo.js';
import { walkTree, type TarEntry } from './tar-writer.js';

/**
 * The `.git` a workspace ships, per mode:
 * - full_copy: the repo's own git dir, whole (history, refs, config, hooks,
 *   staged changes in the index, submodules' git dirs); lock files of a git
 *   running on the host right now are left out.
 * - shallow: a fresh repo holding only the last SHALLOW_FETCH_DEPTH commits
 *   of HEAD (and of --from) with their trees, packed from the host repo into
 *   a temp dir, on the same branch. No remotes, hooks or host config travel,
 *   so nothing like a credential in a remote URL reaches the guest.
 */

export interface GitMetadata {
  entries: TarEntry[];
  /**
   * shallow: the tree id of the working tree the guest will have (HEAD with
   * the shipped changes), computed here where hashing is cheap; the guest
   * records it as the state banger left (see WORKSPACE_MARKER).
   */
  workingTree?: string;
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
    // The commits: the last SHALLOW_FETCH_DEPTH of each tip's history. Those with a parent
    // left out are the shallow boundary, as `git fetch --depth` would record it.
    const parents = new Map<string, string[]>();
    for (const tip of new Set([snapshot.head, ...extraCommits])) {
      const lines = (await gitOk(snapshot.root, ['rev-list', '--parents', `--max-count=${SHALLOW_FETCH_DEPTH}`, tip], signal)).toString('utf8');
      for (const line of lines.trim().split('\n')) {
        const [commit = '', ...rest] = line.split(' ');
        parents.set(commit, rest);
      }
    }
    const boundary = [...parents].filter(([, ps]) => ps.some((p) => !parents.has(p))).map(([commit]) => commit);
    // Their objects, packed straight into the new repo by pack-objects (which writes the index
    // too): no delta search and light compression, so a repo of loose objects packs in about a
    // third of the time `git fetch --depth` takes (its options cannot reach the sending side).
    const objects = await gitOk(snapshot.root, ['rev-list', '--objects', '--no-walk', ...parents.keys()], signal);
    const packDir = join(repo, '.git', 'objects', 'pack');
    mkdirSync(packDir, { recursive: true });
    // The new repo is pack-objects' object directory (its temporary pack file goes there) and the
    // host repo's objects are read as alternates: the host repo is only ever read, never written
    // (it may be read-only, or not the daemon user's to write).
    const hostObjects = resolve(snapshot.root, (await gitOk(snapshot.root, ['rev-parse', '--git-path', 'objects'], signal)).toString('utf8').trim());
    await gitOk(snapshot.root, ['-c', 'pack.window=0', '-c', 'pack.compression=1', 'pack-objects', '--quiet', join(packDir, 'pack')], signal, objects, {
      GIT_OBJECT_DIRECTORY: join(repo, '.git', 'objects'),
      GIT_ALTERNATE_OBJECT_DIRECTORIES: hostObjects,
    });
    if (boundary.length > 0) writeFileSync(join(repo, '.git', 'shallow'), boundary.sort().join('\n') + '\n');
    if (snapshot.branch === null) {
      await gitOk(repo, ['update-ref', '--no-deref', 'HEAD', snapshot.head], signal);
    } else {
      await gitOk(repo, ['update-ref', `refs/heads/${snapshot.branch}`, snapshot.head], signal);
      await gitOk(repo, ['symbolic-ref', 'HEAD', `refs/heads/${snapshot.branch}`], signal);
    }
    const gitDir = join(repo, '.git');
    const workingTree = await workingTreeId(gitDir, snapshot, join(temp, 'index'), signal);
    return { entries: await walkTree(gitDir, '.git', (rel) => rel.startsWith('hooks/') && rel.endsWith('.sample')), workingTree, dispose };
  } catch (error) {
    dispose();
    throw error;
  }
}

/**
 * The tree `git add -A` will see in the guest: HEAD, with the shipped changes
 * and deletions applied, hashed from the host's files through a scratch index
 * of the new repo, whose fresh config has no filters or line-ending rules, as
 * the guest's has none (the host user's global and system config are left out).
 */
async function workingTreeId(gitDir: string, snapshot: RepoSnapshot, index: string, signal?: AbortSignal): Promise<string> {
  const env = { GIT_DIR: gitDir, GIT_WORK_TREE: snapshot.root, GIT_INDEX_FILE: index, GIT_CONFIG_GLOBAL: '/dev/null', GIT_CONFIG_NOSYSTEM: '1' };
  const run = async (args: string[], input?: Buffer): Promise<string> => {
    const result = await git(snapshot.root, args, { signal, env, input });
    if (result.code !== 0) throw new BangerError('ERR_HOST_COMMAND_FAILED', `git ${args[0] ?? ''} failed: ${result.stderr.trim()}`);
    return result.stdout.toString('utf8').trim();
  };
  await run(['read-tree', snapshot.head]);
  const paths = [...snapshot.changed, ...snapshot.deleted];
  if (paths.length > 0) await run(['update-index', '--add', '--remove', '-z', '--stdin'], Buffer.from(paths.map((p) => `${p}\0`).join(''), 'utf8'));
  return run(['write-tree']);
}
