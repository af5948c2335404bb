import { Command, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { includeInstalled, includeLine, installInclude, uninstallInclude, userSshConfigPath } from '../../guest/ssh-config.js';
import { createContext } from '../context.js';

interface SshConfigStatus {
  /** banger's own ssh_config. */
  path: string;
  /** The line ~/.ssh/config needs for `ssh root@<name>.vm`. */
  include: string;
  /** Whether ~/.ssh/config has it. */
  installed: boolean;
  /** The user's ssh config that was (or would be) edited. */
  userConfig: string;
  /** With --install/--uninstall: whether the user's file was changed. */
  changed?: boolean;
}

export function sshConfigCommand(): CommandUnknownOpts {
  return new Command('ssh-config')
    .description('Show or set up `ssh root@<name>.vm` for the plain ssh command (opt-in include in ~/.ssh/config)')
    .addOption(new Option('--install', "add an Include of banger's ssh_config at the top of ~/.ssh/config").conflicts('uninstall'))
    .addOption(new Option('--uninstall', 'remove that Include again'))
    .addHelpText(
      'after',
      `
The daemon keeps banger's own ssh_config (in banger's config dir) up to date:
a "Host <name>.vm" entry with the address of each running VM, and banger's
key and known_hosts for *.vm. banger never touches ~/.ssh otherwise: only
--install adds one Include line (between "# >>> banger >>>" markers, at the
top, the rest of the file byte for byte as it was) and --uninstall takes
exactly that out. After --install, plain \`ssh root@<name>.vm\` (and scp,
rsync, git, editors' remote modes) reach a running VM.

A symlinked ~/.ssh/config (dotfile managers) is edited at its target.
Without either option this only reports; no daemon is needed.`,
    )
    .action((options, command) => {
      const cli = createContext(command);
      const userConfig = userSshConfigPath(cli.pathEnv.home);
      const bangerConfig = cli.layout.sshConfig;
      let changed: boolean | undefined;
      if (options.install === true) changed = installInclude(userConfig, bangerConfig).changed;
      else if (options.uninstall === true) changed = uninstallInclude(userConfig, bangerConfig).changed;
      const status: SshConfigStatus = {
        path: bangerConfig,
        include: includeLine(bangerConfig),
        installed: includeInstalled(userConfig, bangerConfig),
        userConfig,
        ...(changed === undefined ? {} : { changed }),
      };
      cli.out.result(status, (s) => render(s, options.install === true ? 'install' : options.uninstall === true ? 'uninstall' : 'show'));
    });
}

function render(s: SshConfigStatus, action: 'show' | 'install' | 'uninstall'): string {
  if (action === 'install') {
    return s.changed === true
      ? `added to ${s.userConfig}: ${s.include}\nplain \`ssh root@<name>.vm\` now reaches a running VM`
      : `already in ${s.userConfig}: ${s.include}`;
  }
  if (action === 'uninstall') {
    return s.changed === true ? `removed banger's Include from ${s.userConfig}` : `nothing to remove: ${s.userConfig} has no banger block`;
  }
  return [
    `banger's ssh_config: ${s.path}`,
    `include line:        ${s.include}`,
    `in ${s.userConfig}: ${s.installed ? 'yes' : 'no'}`,
    '',
    s.installed ? 'plain `ssh root@<name>.vm` reaches a running VM.' : 'for plain `ssh root@<name>.vm` to reach a running VM:',
    '  banger ssh-config --install     add the include at the top of ~/.ssh/config',
    '  banger ssh-config --uninstall   remove it again',
  ].join('\n');
}
