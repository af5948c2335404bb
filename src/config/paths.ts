import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

import * as names from './filenames.js';

/**
 * Where banger keeps things, resolved from the XDG base-directory variables.
 * Every helper takes the environment explicitly so tests can point banger at
 * temporary directories without touching process.env.
 */
export interface PathEnv {
  env: NodeJS.ProcessEnv;
  uid: number;
  home: string;
}

export function currentPathEnv(): PathEnv {
  return { env: process.env, uid: process.getuid?.() ?? 0, home: homedir() };
}

export interface Layout {
  configDir: string;
  configFile: string;
  /** banger's own ssh_config (`Host <name>.vm` blocks); ~/.ssh/config includes it only after `banger ssh-config --install`. */
  sshConfig: string;
  stateDir: string;
  storePath: string;
  daemonLog: string;
  sshDir: string;
  sshKey: string;
  knownHosts: string;
  vmsDir: string;
  imagesDir: string;
  kernelsDir: string;
  cacheDir: string;
  downloadsDir: string;
  runtimeDir: string;
  /** True when XDG_RUNTIME_DIR was unset and the /tmp fallback is in use. */
  runtimeDirIsFallback: boolean;
  socketPath: string;
}

/** An XDG variable is honoured only when it is an absolute path, as the spec says. */
function xdg(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return value !== undefined && value !== '' && isAbsolute(value) ? value : undefined;
}

export function resolveLayout(pathEnv: PathEnv = currentPathEnv()): Layout {
  const { env, uid, home } = pathEnv;
  const configDir = join(xdg(env, 'XDG_CONFIG_HOME') ?? join(home, '.config'), 'banger');
  const stateDir = join(xdg(env, 'XDG_STATE_HOME') ?? join(home, '.local', 'state'), 'banger');
  const cacheDir = join(xdg(env, 'XDG_CACHE_HOME') ?? join(home, '.cache'), 'banger');
  const xdgRuntime = xdg(env, 'XDG_RUNTIME_DIR');
  const runtimeDir = xdgRuntime === undefined ? join('/tmp', `${names.RUNTIME_FALLBACK_PREFIX}${uid}`) : join(xdgRuntime, names.RUNTIME_DIR_NAME);
  const sshDir = join(stateDir, names.SSH_DIR);
  return {
    configDir,
    configFile: join(configDir, names.CONFIG_FILE),
    sshConfig: join(configDir, names.SSH_CONFIG),
    stateDir,
    storePath: join(stateDir, names.STATE_DB),
    daemonLog: join(stateDir, names.DAEMON_LOG),
    sshDir,
    sshKey: join(sshDir, names.SSH_KEY),
    knownHosts: join(sshDir, names.KNOWN_HOSTS),
    vmsDir: join(stateDir, names.VMS_DIR),
    imagesDir: join(stateDir, names.IMAGES_DIR),
    kernelsDir: join(stateDir, names.KERNELS_DIR),
    cacheDir,
    downloadsDir: join(cacheDir, names.DOWNLOADS_DIR),
    runtimeDir,
    runtimeDirIsFallback: xdgRuntime === undefined,
    socketPath: join(runtimeDir, names.DAEMON_SOCKET),
  };
}
