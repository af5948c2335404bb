import { posix } from 'node:path';

import { shellJoin, shellQuote } from '../guest/shell.js';
import type { WorkspaceMode } from '../rpc/methods.js';

/**
 * The shell scripts banger runs in a guest for workspaces (POSIX sh, run by
 * root's login shell over the guest connection). Every value from outside is
 * quoted with shellQuote; guest paths are validated first as well.
 *
 * Exit statuses 90-99 are how the scripts report what went wrong; the
 * workspace service turns them into error codes.
 */

export const SCRIPT_EXIT = {
  gitMissing: 90,
  tarMissing: 91,
  notBangerWorkspace: 92,
  workspaceChanged: 93,
  unknownCommit: 94,
  noRepo: 95,
} as const;

/** Name prefix of the directory an import unpacks into before it becomes the workspace (under /root). */
export const STAGING_PREFIX = '/root/.banger-staging-';
/** Inside the guest repo's git dir: `<head> <tree>` of the workspace as banger left it. */
export const WORKSPACE_MARKER = 'banger-workspace';
/** Inside the guest repo's git dir: temporary index files (never the repo's own index). */
const TEMP_INDEX_PREFIX = 'banger-index.';
/**
 * Shallow imports ship, inside the staging repo's .git, the working-tree
 * files that differ from HEAD (under this directory, at their paths) and the
 * NUL-separated list of HEAD's paths the guest must not have.
 */
export const OVERLAY_DIR = 'banger-overlay';
export const DELETED_LIST = 'banger-deleted';

/**
 * Defines `banger_tree`: prints the tree id of the working tree as `git add -A`
 * sees it (ignored files excluded), computed in a temporary index inside the
 * git dir so the repo's own index is never touched. The temporary index must
 * share a filesystem with .git/index: git writes it through a lock file and a
 * rename (a temp file on tmpfs fails with "unable to write new index file").
 * It starts as a copy of the real index, so unchanged files are not hashed again.
 */
const TREE_FUNCTION = [
  'banger_tree() {',
  '  gd=$(git rev-parse --absolute-git-dir) || return 1',
  `  idx=$(mktemp "$gd/${TEMP_INDEX_PREFIX}XXXXXX") || return 1`,
  '  if [ -f "$gd/index" ]; then cp "$gd/index" "$idx"; else rm -f "$idx"; fi',
  '  GIT_INDEX_FILE="$idx" git add -A >/dev/null 2>&1 && GIT_INDEX_FILE="$idx" git write-tree',
  '  banger_status=$?',
  '  rm -f "$idx"',
  '  return $banger_status',
  '}',
].join('\n');

/**
 * Before an import: git and tar must exist, leftovers of interrupted imports
 * go, and an existing workspace at the path may only be replaced (without
 * force) when it is banger's and unchanged since banger prepared it, so
 * re-preparing never silently throws away work done in the guest.
 */
export function preflightScript(guestPath: string, options: { force: boolean }): string {
  const p = shellQuote(guestPath);
  const lines = [
    `command -v git >/dev/null 2>&1 || exit ${SCRIPT_EXIT.gitMissing}`,
    `command -v tar >/dev/null 2>&1 || exit ${SCRIPT_EXIT.tarMissing}`,
    `rm -rf ${STAGING_PREFIX}*`,
    TREE_FUNCTION,
  ];
  if (!options.force) {
    lines.push(
      `if [ -e ${p} ] || [ -L ${p} ]; then`,
      `  cd ${p} 2>/dev/null || exit ${SCRIPT_EXIT.notBangerWorkspace}`,
      `  gd=$(git rev-parse --absolute-git-dir 2>/dev/null) || exit ${SCRIPT_EXIT.notBangerWorkspace}`,
      `  [ "$(git rev-parse --show-toplevel 2>/dev/null)" = ${p} ] || exit ${SCRIPT_EXIT.notBangerWorkspace}`,
      `  [ -f "$gd/${WORKSPACE_MARKER}" ] || exit ${SCRIPT_EXIT.notBangerWorkspace}`,
      `  read -r want_head want_tree < "$gd/${WORKSPACE_MARKER}" || exit ${SCRIPT_EXIT.notBangerWorkspace}`,
      `  rm -f "$gd"/${TEMP_INDEX_PREFIX}*`,
      `  [ "$(git rev-parse -q --verify HEAD)" = "$want_head" ] || exit ${SCRIPT_EXIT.workspaceChanged}`,
      `  [ "$(banger_tree)" = "$want_tree" ] || exit ${SCRIPT_EXIT.workspaceChanged}`,
      'fi',
    );
  }
  lines.push('exit 0');
  return lines.join('\n');
}

export interface ImportOptions {
  guestPath: string;
  mode: WorkspaceMode;
  /** Create and check out this branch. */
  branch: string | undefined;
  /** Check out this commit (on `branch`) instead of the shipped working tree. */
  from: string | undefined;
  /** The host's git identity, set on the guest repo unless it has its own. */
  identity: { name: string | undefined; email: string | undefined };
  /** The working tree's tree id when the host already knows it (shallow); else the guest computes it. */
  workingTree: string | undefined;
}

/**
 * Unpacks the tar on stdin into a staging directory, finishes the repo there
 * (working tree, index, branch, identity, the marker), and only then swaps it
 * in at the guest path, so an interrupted import never leaves a half-written
 * workspace (the staging directory is removed by the next preflight, or at
 * boot). Then trusts mise configs, best effort.
 *
 * Working tree, per mode:
 * - shallow: git checks HEAD out from the shipped objects (writing files from
 *   objects records their stat data, so nothing is hashed again), then the
 *   shipped files that differ from HEAD are moved over it and the deleted
 *   ones removed; only those few are hashed by the refresh. Shipping the
 *   whole tree instead would send every byte uncompressed and hash it all in
 *   the guest (seconds, under emulation).
 * - full_copy: the whole working tree was shipped; the host's index (staged
 *   changes) is kept and its stat data refreshed.
 * - --from: the guest checks that commit out on the new branch.
 */
export function importScript(options: ImportOptions): string {
  const p = shellQuote(options.guestPath);
  const lines = [
    'set -e',
    'umask 022',
    `s=$(mktemp -d ${STAGING_PREFIX}XXXXXX)`,
    `trap 'cd /; rm -rf "$s"' EXIT`,
    'tar -x -f - -C "$s"',
    'cd "$s"',
    TREE_FUNCTION,
  ];
  for (const [key, value] of [
    ['user.name', options.identity.name],
    ['user.email', options.identity.email],
  ] as const) {
    if (value !== undefined) lines.push(`git config --local --get ${key} >/dev/null 2>&1 || git config --local ${key} ${shellQuote(value)}`);
  }
  if (options.from !== undefined && options.branch !== undefined) {
    lines.push(`git checkout -q -f -B ${shellQuote(options.branch)} ${shellQuote(options.from)}`);
  } else {
    if (options.mode === 'shallow') {
      lines.push(
        'git read-tree HEAD',
        'git checkout-index -a -f -u -q',
        `if [ -s .git/${DELETED_LIST} ]; then xargs -0 rm -f -- < .git/${DELETED_LIST}; fi`,
        // Files only (directories come with them): --unlink-first replaces a symlink or file in the way instead of writing through it.
        // Only files laid over the checkout (or removed) need their index entries refreshed.
        `if [ -d .git/${OVERLAY_DIR} ] || [ -s .git/${DELETED_LIST} ]; then`,
        `  if [ -d .git/${OVERLAY_DIR} ]; then (cd .git/${OVERLAY_DIR} && find . ! -type d -print0 | tar --null -T - -cf -) | tar --unlink-first -xf -; fi`,
        '  git update-index -q --refresh >/dev/null 2>&1 || true',
        'fi',
        `rm -rf .git/${OVERLAY_DIR} .git/${DELETED_LIST}`,
      );
    } else {
      lines.push('git update-index -q --refresh >/dev/null 2>&1 || true');
    }
    if (options.branch !== undefined) lines.push(`git checkout -q -b ${shellQuote(options.branch)}`);
  }
  lines.push(
    'gd=$(git rev-parse --absolute-git-dir)',
    'head=$(git rev-parse HEAD)',
    options.workingTree === undefined ? 'tree=$(banger_tree)' : `tree=${shellQuote(options.workingTree)}`,
    `printf '%s %s\\n' "$head" "$tree" > "$gd/${WORKSPACE_MARKER}"`,
    'cd /',
    `rm -rf ${p}`,
    `mkdir -p ${shellQuote(posix.dirname(options.guestPath))}`,
    `mv "$s" ${p}`,
    'trap - EXIT',
    miseTrustLine(options.guestPath),
  );
  return lines.join('\n');
}

/** Trusts the workspace's mise configs: guarded, quiet, never failing a prepare. */
export function miseTrustLine(guestPath: string): string {
  return `if command -v mise >/dev/null 2>&1; then mise trust --quiet --all ${shellQuote(guestPath)} >/dev/null 2>&1 || true; fi`;
}

/**
 * Export, never changing the repo: `git add -A` into a temporary index (see
 * TREE_FUNCTION), then a diff of that index against the base. stdout is:
 * the resolved base commit on a line, the byte length of the `--name-status
 * -z` list on a line, the list, then (unless stat) the binary patch.
 */
export function exportScript(guestPath: string, baseRef: string, options: { stat: boolean }): string {
  const diff = 'GIT_INDEX_FILE="$idx" git -c core.quotePath=false diff --cached --no-renames --no-color --no-ext-diff --no-textconv';
  const lines = [
    'set -e',
    `command -v git >/dev/null 2>&1 || exit ${SCRIPT_EXIT.gitMissing}`,
    `cd ${shellQuote(guestPath)} 2>/dev/null || exit ${SCRIPT_EXIT.noRepo}`,
    `gd=$(git rev-parse --absolute-git-dir 2>/dev/null) || exit ${SCRIPT_EXIT.noRepo}`,
    `base=$(git rev-parse -q --verify ${shellQuote(`${baseRef}^{commit}`)}) || exit ${SCRIPT_EXIT.unknownCommit}`,
    `rm -f "$gd"/${TEMP_INDEX_PREFIX}*`,
    `idx=$(mktemp "$gd/${TEMP_INDEX_PREFIX}XXXXXX")`,
    `trap 'rm -f "$idx" "$idx.names"' EXIT`,
    'if [ -f "$gd/index" ]; then cp "$gd/index" "$idx"; else rm -f "$idx"; fi',
    'GIT_INDEX_FILE="$idx" git add -A',
    `${diff} -z --name-status "$base" > "$idx.names"`,
    `printf '%s\\n' "$base"`,
    'wc -c < "$idx.names"',
    'cat "$idx.names"',
  ];
  if (!options.stat) lines.push(`${diff} --binary --src-prefix=a/ --dst-prefix=b/ "$base"`);
  return lines.join('\n');
}

/** What a registry image's config asks of the commands run in it (see services/image/oci-pull.ts). */
export interface ImageRunConfig {
  /** `KEY=value` entries, exported in order. */
  env: readonly string[];
  /** Where commands start when there is no workspace. */
  workingDir: string | null;
  /** A login name commands run as when there is no workspace (the workspace, in /root, is root's). */
  user: string | null;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `vm exec`'s command line: in the workspace directory when there is one
 * (else the image's WorkingDir), with the image's Env exported, through
 * `mise exec --` when mise is installed (so mise-managed tools are on PATH),
 * and `exec`'d so signals and the exit status are the command's own. Outside
 * a workspace, an image's User runs it, through banger's busybox `su`.
 */
export function execScript(argv: readonly string[], workdir: string | undefined, image?: ImageRunConfig): string {
  const command = shellJoin(argv);
  const exports = (image?.env ?? []).flatMap((entry) => {
    const equals = entry.indexOf('=');
    const name = equals === -1 ? '' : entry.slice(0, equals);
    return ENV_NAME.test(name) ? [`export ${name}=${shellQuote(entry.slice(equals + 1))}`] : [];
  });
  const dir = workdir ?? image?.workingDir ?? undefined;
  const body = [
    ...exports,
    ...(dir === undefined ? [] : [`cd ${shellQuote(dir)} || exit 1`]),
    `if command -v mise >/dev/null 2>&1; then exec mise exec -- ${command}; fi`,
    `exec ${command}`,
  ];
  const user = workdir === undefined ? (image?.user ?? null) : null;
  if (user === null) return body.join('\n');
  return `exec /banger/busybox su -s /bin/sh -c ${shellQuote(body.join('\n'))} ${shellQuote(user)}`;
}

/** Validates a commit name given for export before it reaches a guest shell (still quoted there). */
export function isPlausibleRef(ref: string): boolean {
  return /^[A-Za-z0-9._/~^@{}-]+$/.test(ref) && !ref.startsWith('-') && ref.length <= 256;
}
