import { Command, CommanderError, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Command as BaseCommand } from 'commander';

import { buildInfo } from '../build-info.js';
import { BangerError } from '../rpc/errors.js';
import { completionCommand } from './commands/completion.js';
import { daemonCommand } from './commands/daemon.js';
import { debugCommand } from './commands/debug.js';
import { doctorCommand } from './commands/doctor.js';
import { imageCommand } from './commands/image.js';
import { kernelCommand } from './commands/kernel.js';
import { mcpCommand } from './commands/mcp.js';
import { sshConfigCommand } from './commands/ssh-config.js';
import { systemCommand } from './commands/system.js';
import { tuiCommand } from './commands/tui.js';
import { versionCommand } from './commands/version.js';
import { vmCommand } from './commands/vm.js';
import { vmListCommand } from './commands/vm-list.js';
import { closeConnections, exitCodeRequested, installInterruptHandler } from './context.js';
import { EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_STATUS_HELP, EXIT_USAGE } from './exit-codes.js';
import { Output } from './output.js';

export function buildProgram(): CommandUnknownOpts {
  const program = new Command('banger')
    .description('Throwaway local microVMs with your git repo inside')
    .version(`banger ${buildInfo().version} (build ${buildInfo().buildId})`, '-V, --version', 'print the version and exit')
    .option('--json', 'machine-readable JSON output')
    .option('-v, --verbose', 'more detail: notices, op ids and stack traces on errors')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
Getting started:
  banger doctor                 check this host can run banger VMs
  banger daemon status          see whether the daemon runs (it starts on demand)

${EXIT_STATUS_HELP}`,
    );
  program.addCommand(daemonCommand());
  program.addCommand(vmCommand());
  program.addCommand(vmListCommand('ps').description('List VMs (the same as `banger vm list`)'));
  program.addCommand(imageCommand());
  program.addCommand(kernelCommand());
  program.addCommand(mcpCommand());
  program.addCommand(tuiCommand());
  program.addCommand(doctorCommand());
  program.addCommand(sshConfigCommand());
  program.addCommand(systemCommand());
  program.addCommand(versionCommand());
  const completion = completionCommand(program as unknown as BaseCommand);
  program.addCommand(completion.script);
  program.addCommand(completion.worker, { hidden: true });
  program.addCommand(debugCommand(), { hidden: true });
  for (const command of allCommands(program)) {
    command.exitOverride();
    // `banger help <cmd>` stays; `banger daemon help` would only duplicate `--help`.
    if (command !== program) command.helpCommand(false);
  }
  return program;
}

function allCommands(command: CommandUnknownOpts): CommandUnknownOpts[] {
  return [command, ...command.commands.flatMap((c) => allCommands(c))];
}

/** Runs the CLI and returns the exit status. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  const wantsJson = argv.includes('--json');
  const out = new Output({ json: wantsJson, verbose: argv.includes('--verbose') || argv.includes('-v') });
  installInterruptHandler(() => process.exit(EXIT_INTERRUPTED));
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCodeRequested() ?? EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help asked for (or shown because a command group was given no subcommand) is not an error.
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') {
        return EXIT_OK;
      }
      // commander already printed its message; --json callers also get a structured error.
      if (wantsJson) out.error(new BangerError('ERR_USAGE', error.message.replace(/^error: /, '')));
      return EXIT_USAGE;
    }
    if (error instanceof BangerError && error.code === 'ERR_CANCELLED') {
      out.error(error);
      return EXIT_INTERRUPTED;
    }
    if (error instanceof BangerError && error.code === 'ERR_USAGE') {
      out.error(error);
      return EXIT_USAGE;
    }
    out.error(error);
    return EXIT_FAILURE;
  } finally {
    closeConnections();
  }
}
