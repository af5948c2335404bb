import { homedir } from 'node:os';

import { connectDaemon, tryConnect } from '../cli/daemon-connection.js';
import { currentPathEnv, resolveLayout, type PathEnv } from '../config/paths.js';
import { BangerError } from '../rpc/errors.js';
import { BangerClient } from './client.js';

export interface ConnectOptions {
  /**
   * Talk to the daemon on this socket. Connects only: no daemon is started
   * and a daemon of another build is used as it is. Default: the socket of
   * this user's daemon, found the way the `banger` CLI finds it
   * ($XDG_RUNTIME_DIR/banger/bangerd.sock, else /tmp/banger-<uid>/).
   */
  socketPath?: string | undefined;
  /**
   * Start the daemon when none runs, and replace one that runs a different
   * build than this package (as the CLI does). Default true; with false, a
   * missing daemon is ERR_DAEMON_UNREACHABLE.
   */
  autoStart?: boolean | undefined;
  /**
   * The environment to find banger's directories in (XDG_RUNTIME_DIR,
   * XDG_STATE_HOME, XDG_CONFIG_HOME, XDG_CACHE_HOME, HOME), also given to a
   * daemon this starts. Default: process.env.
   */
  env?: NodeJS.ProcessEnv | undefined;
  /** Told when this starts or restarts the daemon. Default: silent. */
  onNotice?: ((message: string) => void) | undefined;
}

/**
 * Connects to this user's bangerd, starting it when needed (see
 * ConnectOptions). Rejects with a BangerError: ERR_DAEMON_UNREACHABLE,
 * ERR_DAEMON_START_FAILED, ERR_RUNTIME_DIR_INSECURE…
 */
export async function connect(options: ConnectOptions = {}): Promise<BangerClient> {
  if (options.socketPath !== undefined) {
    const connection = await tryConnect(options.socketPath);
    if (connection === undefined)
      throw new BangerError('ERR_DAEMON_UNREACHABLE', `no bangerd is listening at ${options.socketPath}`, {
        hint: "start it with `banger daemon start`, or leave socketPath out to find (and start) this user's daemon",
      });
    return new BangerClient(connection.client, connection.ping, options.socketPath);
  }
  const pathEnv = pathEnvOf(options.env);
  const layout = resolveLayout(pathEnv);
  const connection = await connectDaemon({
    layout,
    uid: pathEnv.uid,
    autoStart: options.autoStart ?? true,
    notice: options.onNotice ?? (() => undefined),
    env: pathEnv.env,
  });
  if (connection === undefined)
    throw new BangerError('ERR_DAEMON_UNREACHABLE', `bangerd is not running (no daemon at ${layout.socketPath})`, {
      hint: 'start it with `banger daemon start`, or connect with autoStart: true',
    });
  return new BangerClient(connection.client, connection.ping, layout.socketPath);
}

function pathEnvOf(env: NodeJS.ProcessEnv | undefined): PathEnv {
  const current = currentPathEnv();
  if (env === undefined) return current;
  const home = env.HOME;
  return { env, uid: current.uid, home: home !== undefined && home !== '' ? home : homedir() };
}
