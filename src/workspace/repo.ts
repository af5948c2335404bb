import { lstatSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';

import { BangerError } from '../rpc/errors.js';
import type { WorkspaceMode } from '../rpc/methods.js';
import { git, gitOk, splitNul } from './git.js';

/**
 * What a workspace ships from a host repo, read with git and nothing else.
 * Pure reads: the CLI runs this for `--dry-run` (no daemon, no VM), and the
 * daemon runs the same code before it touches a guest, so every bad input is
 * refused before anything changes anywhere.
 *
 * What ships: the files git tracks, as they are in the working tree now
 * (uncommitted edits included, tracked files deleted on disk left out), plus
 * untracked files that are not ignored when asked. Ignored files never ship.
 */

export interface RepoSnapshot {
  /** The repo's top-level directory (symlinks resolved). */
  root: string;
  /** Absolute git dir (for a linked worktree, its private git dir). */
  gitDir: string;
  /** Whether the git dir is `<root>/.git` (false for linked worktrees). */
  standardGitDir: boolean;
  head: string;
  /** Current branch name, or null on a detached HEAD. */
  branch: string | null;
  /** The guest's working-tree files, relative to root, sorted: what --dry-run lists. */
  files: string[];
  /**
   * Of `files`, those whose bytes may differ from HEAD (edited, added,
   * untracked, mode or type changed): a shallow prepare checks HEAD out in
   * the guest and ships only these.
   */
  changed: string[];
  /** Paths in HEAD that must not be in the guest (deleted, or untracked and not shipped). */
  deleted: string[];
  /** Untracked, non-ignored files (shipped only with includeUntracked). */
  untracked: number;
  includeUntracked: boolean;
  /** Paths of submodules (gitlinks) in the index. */
  submodules: string[];
}

export interface InspectOptions {
  includeUntracked: boolean;
  mode: WorkspaceMode;
  signal?: AbortSignal | undefined;
}

const GITLINK_MODE = '160000';

/** Inspects the repo containing `path` (any directory inside it). */
export async function inspectRepo(path: string, options: InspectOptions): Promise<RepoSnapshot> {
  const dir = resolve(path);
  if (!isDirectory(dir)) {
    throw new BangerError('ERR_NOT_A_GIT_REPO', `${dir} is not a directory`, { hint: 'give the path of a directory inside a git repository' });
  }
  const located = await git(dir, ['rev-parse', '--show-toplevel', '--absolute-git-dir'], { signal: options.signal });
  const [top, gitDir] = located.stdout.toString('utf8').trim().split('\n');
  if (located.code !== 0 || top === undefined || gitDir === undefined || top === '') {
    throw new BangerError('ERR_NOT_A_GIT_REPO', `${dir} is not inside a git repository (with a working tree)`, {
      hint: 'run it from (or name) a directory of a git checkout; `git init` makes one',
    });
  }
  const root = realpathSync(top);
  const head = await git(root, ['rev-parse', '--verify', '--quiet', 'HEAD^{commit}'], { signal: options.signal });
  if (head.code !== 0) {
    throw new BangerError('ERR_REPO_NO_COMMITS', `the repository at ${root} has no commits yet`, {
      hint: 'commit something first (git add -A && git commit): a workspace starts from a commit',
    });
  }
  const branch = await git(root, ['symbolic-ref', '--quiet', '--short', 'HEAD'], { signal: options.signal });

  const staged = parseStage(await gitOk(root, ['ls-files', '-z', '--stage'], options.signal));
  const submodules = [...staged].filter(([, mode]) => mode === GITLINK_MODE).map(([p]) => p);
  if (submodules.length > 0 && options.mode !== 'full_copy') {
    throw new BangerError(
      'ERR_SUBMODULES_NEED_FULL_COPY',
      `the repository has submodules (${submodules.slice(0, 5).join(', ')}${submodules.length > 5 ? ', …' : ''}); only --mode full_copy copies them`,
      {
        hint: 'rerun with --mode full_copy (ships the whole .git, history included)',
      },
    );
  }
  const tracked = submodules.length === 0 ? [...staged.keys()] : await withSubmoduleFiles(root, submodules, options.signal);
  const untrackedPaths = splitNul(await gitOk(root, ['ls-files', '-z', '--others', '--exclude-standard'], options.signal));

  const candidates = options.includeUntracked ? [...tracked, ...untrackedPaths] : tracked;
  const checker = new PathChecker(root);
  for (const p of candidates) checker.check(p);
  // Each checked-out submodule's `.git` link (a file pointing into .git/modules) ships with it.
  const links = submodules.map((sub) => `${sub}/.git`).filter((link) => lstatSync(join(root, link), { throwIfNoEntry: false }) !== undefined);
  const files = [...candidates.filter((p) => shippable(join(root, p))), ...links].sort();
  const inGuest = new Set(files);
  const untrackedSet = new Set(untrackedPaths);
  const differing = splitNul(await gitOk(root, ['diff', '--name-only', '-z', '--no-renames', '--no-ext-diff', 'HEAD'], options.signal));
  for (const p of differing) checker.check(p);
  const differingSet = new Set(differing);

  return {
    root,
    gitDir,
    standardGitDir: gitDir === join(root, '.git') || safeRealpath(gitDir) === join(root, '.git'),
    head: head.stdout.toString('utf8').trim(),
    branch: branch.code === 0 ? branch.stdout.toString('utf8').trim() : null,
    files,
    changed: files.filter((p) => differingSet.has(p) || untrackedSet.has(p)),
    deleted: differing.filter((p) => !inGuest.has(p)),
    untracked: untrackedPaths.length,
    includeUntracked: options.includeUntracked,
    submodules,
  };
}

/** Resolves a commit-ish in the repo to a full sha; ERR_UNKNOWN_COMMIT when it names nothing. */
export async function resolveCommit(root: string, ref: string, signal?: AbortSignal): Promise<string> {
  if (ref === '' || ref.startsWith('-'))
    throw new BangerError('ERR_UNKNOWN_COMMIT', `"${ref}" is not a commit name`, { hint: 'give a branch, tag or commit id' });
  const result = await git(root, ['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], { signal });
  if (result.code !== 0) {
    throw new BangerError('ERR_UNKNOWN_COMMIT', `no commit "${ref}" in ${root}`, { hint: 'check the name with `git log --oneline` or `git branch -a`' });
  }
  return result.stdout.toString('utf8').trim();
}

/** Throws ERR_INVALID_ARGUMENT unless `name` is a valid new branch name. */
export async function validateBranchName(root: string, name: string): Promise<void> {
  const result = name.startsWith('-') ? undefined : await git(root, ['check-ref-format', '--branch', name]);
  if (result?.code !== 0) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `"${name}" is not a valid branch name`, {
      hint: 'see `git check-ref-format --help` for what a branch may be called',
    });
  }
}

/** `git ls-files --stage -z`: path → mode (unmerged paths appear once). */
function parseStage(output: Buffer): Map<string, string> {
  const entries = new Map<string, string>();
  for (const entry of splitNul(output)) {
    const tab = entry.indexOf('\t');
    if (tab < 0) continue;
    entries.set(entry.slice(tab + 1), entry.slice(0, entry.indexOf(' ')));
  }
  return entries;
}

/** The repo's tracked files with each checked-out submodule's tracked files in place of its gitlink (recursively). */
async function withSubmoduleFiles(root: string, submodules: readonly string[], signal?: AbortSignal): Promise<string[]> {
  return splitNul(await gitOk(root, ['ls-files', '-z', '--recurse-submodules'], signal)).filter((p) => !submodules.includes(p));
}

/**
 * Refuses paths that could write outside the guest repo or into its git
 * metadata, and paths that reach through a symlink on the host (tar would
 * follow it and ship a file from outside the repo). git refuses to create
 * such paths itself, but an index can be crafted.
 */
class PathChecker {
  readonly #root: string;
  readonly #safeDirs = new Set<string>(['']);

  constructor(root: string) {
    this.#root = root;
  }

  check(path: string): void {
    if (path === '' || isAbsolute(path)) this.#refuse(path, 'it is absolute');
    const parts = path.split('/');
    for (const part of parts) {
      if (part === '' || part === '.' || part === '..') this.#refuse(path, 'it has an empty, "." or ".." component');
      if (part.toLowerCase() === '.git') this.#refuse(path, 'it names a .git entry inside the tree');
    }
    let dir = '';
    for (const part of parts.slice(0, -1)) {
      dir = dir === '' ? part : `${dir}/${part}`;
      if (this.#safeDirs.has(dir)) continue;
      let isLink = false;
      try {
        isLink = lstatSync(join(this.#root, dir)).isSymbolicLink();
      } catch {
        // Missing on disk: nothing to follow (the path is then simply not shipped).
      }
      if (isLink) this.#refuse(path, `its parent ${dir} is a symlink`);
      this.#safeDirs.add(dir);
    }
  }

  #refuse(path: string, why: string): never {
    throw new BangerError('ERR_REPO_UNSAFE_PATH', `refusing to ship "${path}" from ${this.#root}: ${why}`, {
      hint: 'the index holds a path git itself would never check out; inspect it with `git ls-files --stage` and remove it with `git rm --cached`',
    });
  }
}

/** Regular files and symlinks ship; a tracked path missing on disk (deleted, not committed) or anything else does not. */
function shippable(path: string): boolean {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  return stat !== undefined && (stat.isFile() || stat.isSymbolicLink());
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}
