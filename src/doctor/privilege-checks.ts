import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { userInfo } from 'node:os';

import { buildInfo } from '../build-info.js';
import type { BangerConfig } from '../config/schema.js';
import { distPath } from '../dist-root.js';
import { HelperClient } from '../root-helper/client.js';
import { helperSocketPath } from '../root-helper/protocol.js';
import { toBangerError } from '../rpc/errors.js';
import { check, type CheckResult } from './report.js';

/**
 * What running as the user needs: the root helper (installed, reachable,
 * this build, allowing this config's bridge and subnet), a /dev/net/tun QEMU
 * may open, and subordinate ids for rootless image builds. As root, banger
 * makes the privileged changes itself and none of this applies.
 */

/** The install command, spelled with this banger's own path: under sudo, `banger` may not be on root's PATH. */
export function installCommand(): string {
  let bin = 'banger';
  try {
    bin = distPath('..', 'bin', 'banger');
  } catch {
    // not a built tree: the plain name
  }
  return `sudo ${bin} system install`;
}

export async function helperCheck(uid: number, env: NodeJS.ProcessEnv, config: BangerConfig | undefined): Promise<CheckResult> {
  if (uid === 0)
    return check('root-helper', 'root helper', 'pass', 'running as root: privileged network changes are made in process (same checks as the helper)');
  const socket = env.BANGER_ROOT_HELPER_SOCKET ?? helperSocketPath(uid);
  if (!existsSync(socket)) {
    return check('root-helper', 'root helper', 'fail', `not installed (no ${socket}): VMs cannot get a network`, installCommand());
  }
  const client = new HelperClient(socket);
  try {
    const hello = await Promise.race([
      client.hello(),
      new Promise<never>((_, reject) =>
        setTimeout(() => {
          reject(new Error('no answer within 3s'));
        }, 3000).unref(),
      ),
    ]);
    const ours = buildInfo().buildId;
    if (hello.buildId !== ours) {
      return check('root-helper', 'root helper', 'fail', `build ${hello.buildId} is installed, this banger is build ${ours}`, installCommand());
    }
    if (config !== undefined && (hello.bridge !== config.network.bridge || hello.subnet !== config.network.subnet)) {
      return check(
        'root-helper',
        'root helper',
        'fail',
        `allows bridge ${hello.bridge} with ${hello.subnet}; config.toml says ${config.network.bridge} with ${config.network.subnet}`,
        `${installCommand()} (it reads your [network])`,
      );
    }
    return check('root-helper', 'root helper', 'pass', `reachable at ${socket}, same build; bridge ${hello.bridge}, ${hello.subnet}`);
  } catch (error) {
    const reason = toBangerError(error);
    return check('root-helper', 'root helper', 'fail', `installed but not answering at ${socket}: ${reason.message}`, installCommand());
  } finally {
    client.close();
  }
}

/** QEMU, running as the user, opens the user's own taps through /dev/net/tun. */
export function tunCheck(uid: number, path = '/dev/net/tun'): CheckResult {
  if (uid === 0) return check('tun', '/dev/net/tun', 'pass', 'root can open it');
  try {
    accessSync(path, constants.R_OK | constants.W_OK);
    return check('tun', '/dev/net/tun', 'pass', 'readable and writable: QEMU can open its taps');
  } catch {
    return check(
      'tun',
      '/dev/net/tun',
      'fail',
      `${path} is not open to you: QEMU cannot attach to a tap`,
      `${installCommand()} (it sets 0666, Debian's default)`,
    );
  }
}

/** Rootless image builds map the image's owners into the user's subordinate ids. */
export function subordinateIdCheck(uid: number, files = { subuid: '/etc/subuid', subgid: '/etc/subgid' }): CheckResult {
  if (uid === 0) return check('subids', 'subordinate ids', 'pass', 'not needed as root');
  const name = userInfo().username;
  const has = (file: string): boolean =>
    existsSync(file) &&
    readFileSync(file, 'utf8')
      .split('\n')
      .some((line) => [name, String(uid)].includes(line.split(':')[0] ?? ''));
  if (has(files.subuid) && has(files.subgid))
    return check('subids', 'subordinate ids', 'pass', `${name} has subordinate uids and gids (rootless image builds)`);
  return check('subids', 'subordinate ids', 'warn', `${name} has no subordinate ids: catalog images cannot be built rootless`, installCommand());
}
