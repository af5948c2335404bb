import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { BangerError } from '../../rpc/errors.js';
import { createContext } from '../context.js';

/** What `banger tui` says when it has no terminal to draw on (exit status 2, a usage error). */
export const NEEDS_TERMINAL_MESSAGE = 'banger tui needs a terminal';
export const NEEDS_TERMINAL_HINT = 'use `banger vm list` or `banger vm stats --watch`';

export function tuiCommand(): CommandUnknownOpts {
  return new Command('tui')
    .description('A live, full-screen list of VMs: start, stop, delete, ssh, console logs, workspace export, create')
    .addHelpText('after', '\nKeys are listed at the bottom of the screen; q or Ctrl-C quits. See docs/tui.md.')
    .action(async (_options, command) => {
      // isTTY is undefined (not false) on a pipe or file, whatever its type says.
      if (!process.stdout.isTTY || !process.stdin.isTTY) {
        throw new BangerError('ERR_USAGE', NEEDS_TERMINAL_MESSAGE, { hint: NEEDS_TERMINAL_HINT });
      }
      // ink draws nothing until it exits when it thinks it runs in CI (is-in-ci, read as ink loads); this is a terminal someone watches.
      delete process.env.CI;
      delete process.env.CONTINUOUS_INTEGRATION;
      const cli = createContext(command);
      // Loaded here, so ink and React load for this command only.
      const { runTui } = await import('../../tui/run.js');
      await runTui(cli);
    });
}
