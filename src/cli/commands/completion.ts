import { Argument, Command, type CommandUnknownOpts } from '@commander-js/extra-typings';
import type { Command as BaseCommand } from 'commander';

import { complete, completionScript, SHELLS } from '../completion.js';

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
    .action((words) => {
      // The shell passes at least the current word; an empty list means "after `banger `".
      const candidates = complete(program, words.length === 0 ? [''] : words);
      for (const c of candidates) process.stdout.write(`${c.value}\t${c.description}\n`);
    });

  return { script, worker };
}
