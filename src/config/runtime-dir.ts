import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

import { BangerError, hasErrnoCode } from '../rpc/errors.js';

/**
 * The runtime dir holds the daemon socket (and later per-VM control sockets),
 * so it must be a real directory owned by us and closed to everyone else:
 * 0700, never a symlink, never someone else's. A /tmp fallback is exactly
 * where another local user could pre-create the directory to catch our
 * sockets, hence the ownership check.
 */

export type RuntimeDirState =
  | { kind: 'missing' }
  | { kind: 'ok'; mode: number }
  | { kind: 'loose'; mode: number }
  | { kind: 'symlink' }
  | { kind: 'not-directory' }
  | { kind: 'foreign-owner'; ownerUid: number };

/** Looks at the runtime dir without changing anything (doctor uses this). */
export function inspectRuntimeDir(path: string, uid: number): RuntimeDirState {
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT')) return { kind: 'missing' };
    throw error;
  }
  if (stat.isSymbolicLink()) return { kind: 'symlink' };
  if (!stat.isDirectory()) return { kind: 'not-directory' };
  if (stat.uid !== uid) return { kind: 'foreign-owner', ownerUid: stat.uid };
  const mode = stat.mode & 0o777;
  return (mode & 0o077) === 0 ? { kind: 'ok', mode } : { kind: 'loose', mode };
}

export function describeRuntimeDirState(path: string, state: RuntimeDirState): string {
  switch (state.kind) {
    case 'missing':
      return `${path} does not exist`;
    case 'ok':
      return `${path} (mode ${formatMode(state.mode)})`;
    case 'loose':
      return `${path} has mode ${formatMode(state.mode)}, looser than 0700`;
    case 'symlink':
      return `${path} is a symlink`;
    case 'not-directory':
      return `${path} is not a directory`;
    case 'foreign-owner':
      return `${path} is owned by uid ${state.ownerUid}, not by you`;
  }
}

/** True for states no one may use, as opposed to ones banger creates or tightens itself. */
export function isUnsafeRuntimeDir(state: RuntimeDirState): boolean {
  return state.kind === 'symlink' || state.kind === 'not-directory' || state.kind === 'foreign-owner';
}

export function insecureRuntimeDirError(path: string, state: RuntimeDirState): BangerError {
  return new BangerError('ERR_RUNTIME_DIR_INSECURE', `refusing to use runtime dir: ${describeRuntimeDirState(path, state)}`, {
    hint: `remove ${path} (it may have been planted by another user) or set XDG_RUNTIME_DIR to a private directory`,
  });
}

export function formatMode(mode: number): string {
  return '0' + mode.toString(8).padStart(3, '0');
}

/**
 * Creates the runtime dir at 0700, tightens a looser one, and refuses a
 * symlink, a non-directory or a directory owned by another user.
 */
export function ensureRuntimeDir(path: string, uid: number): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    const state = inspectRuntimeDir(path, uid);
    switch (state.kind) {
      case 'ok':
        return;
      case 'loose':
        chmodSync(path, 0o700);
        return;
      case 'missing':
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        try {
          mkdirSync(path, { mode: 0o700 });
          chmodSync(path, 0o700); // mkdir's mode is filtered by the umask
        } catch (error) {
          // Someone created it between our look and our mkdir: look again.
          if (!hasErrnoCode(error, 'EEXIST')) throw error;
        }
        continue;
      case 'symlink':
      case 'not-directory':
      case 'foreign-owner':
        throw insecureRuntimeDirError(path, state);
    }
  }
  throw new BangerError('ERR_RUNTIME_DIR_INSECURE', `runtime dir ${path} keeps changing under us`, {
    hint: 'another process is racing banger for this path; set XDG_RUNTIME_DIR to a private directory',
  });
}
