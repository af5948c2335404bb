import { Argument, Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Command as BaseCommand } from 'commander';

import { complete, completionScript, SHELLS, type ObjectLister } from '../completion.js';
import { closeConnections, createContext, type CliContext } from '../context.js';

/**
 * Names from a running daemon. Completion never starts the daemon (a TAB must
 * be quick and change nothing); without one it offers no names.
 */
function daemonObjects(cli: CliContext): ObjectLister {
  return async (kind) => {
    try {
      const connection = await cli.runningDaemon();
      if (connection === undefined) return [];
      const { client } = connection;
      switch (kind) {
        case 'vm':
          return (await client.call('vmList', {})).vms.map((v) => ({ value: v.name, description: `${v.state} ${v.ip}` }));
        case 'image':
          return (await client.call('imageList', {})).images.map((i) => ({ value: i.name, description: i.source }));
        case 'kernel':
          return (await client.call('kernelList', {})).kernels.map((k) => ({ value: k.name, description: k.release ?? k.source }));
      }
    } catch {
      return [];
    } finally {
      closeConnections();
    }
  };
}

export function completionCommand(program: BaseCommand): { script: CommandUnknownOpts; worker: CommandUnknownOpts } {
  const script = new Command('completion')
    .description('Print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'the shell to complete for').choices(SHELLS))
    .addHelpText(
      'after',
      `
Examples:
  source <(banger completion bash)        # bash, current shell
  banger completion bash > /etc/bash_completion.d/banger
  source <(banger completion zsh)         # zsh
  banger completion fish | source         # fish`,
    )
    .action((shell) => {
      process.stdout.write(completionScript(shell));
    });

  const worker = new Command('__complete')
    .description('Completion candidates for the given words (used by the completion scripts)')
    .argument('[words...]')
    .allowUnknownOption()
    .helpOption(false)
    .action(async (words, _options, command) => {
      // The shell passes at least the current word; an empty list means "after `banger `".
      const candidates = await complete(program, words.length === 0 ? [''] : words, daemonObjects(createContext(command)));
      for (const c of candidates) process.stdout.write(`${c.value}\t${c.description}\n`);
    });

  return { script, worker };
}
