import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

import { lstatSync, readFileSync } from 'node:fs';

import { defaultConfig, parseConfig, type BangerConfig } from '../../config/schema.js';
import { distPath } from '../../dist-root.js';
import { installCommand } from '../../doctor/privilege-checks.js';
import { BangerError } from '../../rpc/errors.js';
import { createContext } from '../context.js';

interface TargetUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) {
    throw new BangerError('ERR_NEEDS_ROOT', `${what} needs root`, { hint: `run it with sudo: ${installCommand()}` });
  }
}

/**
 * The user's config.toml, read by root with care: only a regular file the
 * user owns (no symlink to a root-only file, no FIFO), of a sane size.
 */
function readUserConfig(path: string, user: TargetUser): BangerConfig {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return defaultConfig();
  }
  if (!stat.isFile() || stat.uid !== user.uid || stat.size > 256 * 1024) {
    throw new BangerError('ERR_CONFIG_INVALID', `${path} must be a regular file of ${user.name}'s (not a link), under 256 KiB`, {
      hint: 'replace it with a plain file, or move it away to use the default [network]',
    });
  }
  return parseConfig(readFileSync(path, 'utf8'), { path, home: user.home });
}

/** The user the helper is installed for: --user, else the one who ran sudo. */
function targetUser(name: string | undefined, env: NodeJS.ProcessEnv): TargetUser {
  const who = name ?? env.SUDO_USER;
  if (who === undefined || who === '' || who === 'root') {
    throw new BangerError('ERR_USAGE', 'which user is the helper for?', {
      hint: 'run it as `sudo banger system install` from your account, or pass --user NAME',
    });
  }
  let entry: string;
  try {
    entry = execFileSync('getent', ['passwd', who], { encoding: 'utf8' }).trim();
  } catch {
    throw new BangerError('ERR_NOT_FOUND', `no user ${who}`);
  }
  const [user = who, , uid = '', gid = '', , home = ''] = entry.split(':');
  return { name: user, uid: Number(uid), gid: Number(gid), home };
}

export function systemCommand(): CommandUnknownOpts {
  const system = new Command('system').description('Set up (or remove) the root helper that lets banger run as you (needs sudo)');
  system
    .command('install')
    .description('Install and start the root helper for a user: bridge, taps, NAT and resolver routing on their behalf')
    .option('--user <name>', 'the user it serves (default: the user who ran sudo)')
    .addHelpText(
      'after',
      `
banger runs as you: the daemon, QEMU and image builds. The few host changes
that need root (the bridge, your taps, NAT rules in banger's own nftables
tables, resolver routing) go to banger-root, a small service that accepts
only those operations, checks every argument against what was installed for
you (your uid, the bridge and subnet from your config.toml [network]), and
logs each one. This command copies the helper to /usr/local/lib/banger
(root-owned), records your policy in /etc/banger/root-helper.json, opens
/dev/net/tun to users if needed, gives you subordinate ids for rootless
image builds if you have none, and (re)starts the service. Run it again
after upgrading banger or changing [network]. See docs/security.md.`,
    )
    .action(async (options, command) => {
      const cli = createContext(command);
      requireRoot('installing the root helper');
      const { installHelper } = await import('../../root-helper/install.js');
      const user = targetUser(options.user, cli.pathEnv.env);
      // The user's own config decides their bridge and subnet (the default path: sudo does not keep XDG_CONFIG_HOME).
      const config = readUserConfig(join(user.home, '.config', 'banger', 'config.toml'), user);
      const report = await installHelper({
        policy: { uid: user.uid, gid: user.gid, bridge: config.network.bridge, subnet: config.network.subnet },
        user: user.name,
        bundle: distPath('root-helper.cjs'),
        buildInfo: distPath('build-info.json'),
        node: process.execPath,
      });
      cli.out.result({ user: user.name, uid: user.uid, ...report }, (r) =>
        [...r.steps.map((step) => `- ${step}`), `root helper ready for ${r.user} at ${r.socket}; check with \`banger doctor\``].join('\n'),
      );
    });
  system
    .command('uninstall')
    .description("Remove a user's policy from the root helper; with no user left, stop and remove it")
    .option('--user <name>', 'the user (default: the user who ran sudo)')
    .action(async (options, command) => {
      const cli = createContext(command);
      requireRoot('removing the root helper');
      const { uninstallHelper } = await import('../../root-helper/install.js');
      const user = targetUser(options.user, cli.pathEnv.env);
      const steps = await uninstallHelper(user.uid, process.execPath);
      cli.out.result({ user: user.name, steps }, (r) => r.steps.map((step) => `- ${step}`).join('\n'));
    });
  return system;
}
