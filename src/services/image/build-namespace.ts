import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';

import { findExecutable } from '../../host/executables.js';
import { runCommand } from '../../host/command.js';
import { requireSubordinateIds, SUBGID_FILE, SUBUID_FILE, type SubidFiles } from '../../host/subids.js';
import { shellQuote } from '../../guest/shell.js';
import { BangerError } from '../../rpc/errors.js';

/**
 * Where image builds run: a throwaway set of Linux namespaces around one
 * shell script, the same for root and for an ordinary user.
 *
 * - Rootless, the script runs in a new user namespace made by
 *   `unshare --map-auto --map-root-user`: the user is root in it and its
 *   subordinate ids (/etc/subuid, /etc/subgid) are ids 1-65535, so the build
 *   can create files owned by root, _apt, shadow… and see them as such, while
 *   on the host they belong to the user or to ids no one else holds. The only
 *   programs that run as root are the setuid helpers newuidmap/newgidmap that
 *   write the mapping. As root, the same script runs without a user namespace.
 * - A private mount namespace with a tmpfs mounted on a scratch directory:
 *   mmdebstrap's chroot and the unpacked tree live there and vanish with the
 *   namespace, so nothing owned by a subordinate id (which the user could not
 *   delete) is ever left on the host's disk, whatever happens.
 * - A private pid namespace, so that one SIGKILL ends everything in it.
 *   `unshare --fork` blocks SIGTERM (Node's cancel signal) while it waits, so
 *   the command is started as `sh -c 'setpriv --pdeathsig KILL -- unshare … &
 *   wait $!'`: cancelling kills that sh, the kernel then SIGKILLs unshare
 *   (parent-death signal), and unshare's `--kill-child` SIGKILLs the
 *   namespace's init, which takes every process in the namespace with it.
 */

/** Host programs an image build runs, as absolute paths (sbin is often missing from a user's PATH). */
export interface BuildTools {
  sh: string;
  setpriv: string;
  unshare: string;
  mount: string;
  mmdebstrap: string;
  tar: string;
  mkfsExt4: string;
  debugfs: string;
}

export interface BuildHost {
  /** True when banger runs as an ordinary user (a user namespace maps it to root). */
  rootless: boolean;
  tools: BuildTools;
  /**
   * Parent of the scratch mount points. It must be world-searchable: apt
   * downloads as its unprivileged `_apt` user, which must reach the chroot.
   */
  scratchParent: string;
}

const TOOL_PACKAGES: Record<keyof BuildTools, [name: string, pkg: string]> = {
  sh: ['sh', 'dash'],
  setpriv: ['setpriv', 'util-linux'],
  unshare: ['unshare', 'util-linux'],
  mount: ['mount', 'mount'],
  mmdebstrap: ['mmdebstrap', 'mmdebstrap'],
  tar: ['tar', 'tar'],
  mkfsExt4: ['mkfs.ext4', 'e2fsprogs'],
  debugfs: ['debugfs', 'e2fsprogs'],
};

/** Injectable for tests; the defaults describe the current process on this host. */
export interface BuildHostOptions {
  uid?: number;
  user?: string;
  /** Finds a program by name (default: findExecutable on PATH and the sbin dirs). */
  findTool?: (name: string) => string | undefined;
  subids?: SubidFiles;
  scratchParent?: string;
}

/**
 * Checks that this host can build images as the current user and resolves
 * the programs to run. Called before a build does any work, so a missing
 * tool or missing subordinate ids fail at once with a hint that fixes them:
 * ERR_HOST_TOOL_MISSING, or ERR_SUBUID_MISSING.
 */
export function resolveBuildHost(options: BuildHostOptions = {}): BuildHost {
  const uid = options.uid ?? process.getuid?.() ?? 0;
  const findTool = options.findTool ?? ((name: string) => findExecutable(name));
  const rootless = uid !== 0;
  const missing: [string, string][] = [];
  const find = (key: keyof BuildTools): string => {
    const [name, pkg] = TOOL_PACKAGES[key];
    const path = findTool(name);
    if (path === undefined) missing.push([name, pkg]);
    return path ?? name;
  };
  const tools: BuildTools = {
    sh: find('sh'),
    setpriv: find('setpriv'),
    unshare: find('unshare'),
    mount: find('mount'),
    mmdebstrap: find('mmdebstrap'),
    tar: find('tar'),
    mkfsExt4: find('mkfsExt4'),
    debugfs: find('debugfs'),
  };
  if (rootless) {
    for (const helper of ['newuidmap', 'newgidmap']) {
      if (findTool(helper) === undefined) missing.push([helper, 'uidmap']);
    }
  }
  if (missing.length > 0) {
    const packages = [...new Set(missing.map(([, pkg]) => pkg))];
    throw new BangerError('ERR_HOST_TOOL_MISSING', `building images needs ${missing.map(([name]) => name).join(', ')}, not found on this host`, {
      hint: `sudo apt-get install ${packages.join(' ')}`,
    });
  }
  if (rootless) requireSubordinateIds(options.user ?? userInfo().username, uid, options.subids ?? { subuid: SUBUID_FILE, subgid: SUBGID_FILE });
  return { rootless, tools, scratchParent: options.scratchParent ?? tmpdir() };
}

export interface NamespaceRunOptions {
  /** What the script does, for the error message ("mmdebstrap", "packing the image"). */
  what: string;
  signal: AbortSignal;
  onLine?: ((line: string) => void) | undefined;
}

/**
 * Runs `script` with sh in a fresh build namespace (see above). The
 * script starts with `set -eu`, `$scratch` names an empty tmpfs private to
 * it, and `"$@"` holds `args`. Resolves when it exits 0; rejects with
 * ERR_HOST_COMMAND_FAILED otherwise, or with the abort reason when cancelled,
 * by which time every process of the build has been sent SIGKILL. The
 * scratch mount point is removed either way.
 */
export async function runInBuildNamespace(host: BuildHost, script: string, args: readonly string[], options: NamespaceRunOptions): Promise<void> {
  const scratch = mkdtempSync(join(host.scratchParent, 'banger-build-'));
  try {
    chmodSync(scratch, 0o755);
    const prelude = ['set -eu', 'scratch=$1', 'shift', `${shellQuote(host.tools.mount)} -t tmpfs -o mode=0755 banger-scratch "$scratch"`].join('\n');
    const argv = ['-c', KILLABLE, host.tools.setpriv, ...namespaceArgv(host), host.tools.sh, '-c', `${prelude}\n${script}`, 'banger-build', scratch, ...args];
    await runCommand(host.tools.sh, argv, { signal: options.signal, onLine: options.onLine }).catch((error: unknown) => {
      // runCommand names the command it ran, which is only the wrapper shell.
      if (error instanceof BangerError && error.code === 'ERR_HOST_COMMAND_FAILED') {
        throw new BangerError(error.code, error.message.replace(host.tools.sh, options.what), { hint: error.hint, cause: error });
      }
      throw error;
    });
  } finally {
    // Only ever an empty mount point here: the tmpfs lived in the namespace.
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** `$0` is setpriv, `"$@"` the unshare command line; see the module comment for why it runs in the background. */
const KILLABLE = '"$0" --pdeathsig KILL -- "$@" & wait $!';

/** The unshare command line (up to and including `--`) for this host. */
export function namespaceArgv(host: BuildHost): string[] {
  return [
    host.tools.unshare,
    ...(host.rootless ? ['--map-auto', '--map-root-user'] : []),
    '--mount',
    '--propagation',
    'private',
    '--pid',
    '--fork',
    '--kill-child',
    '--',
  ];
}
