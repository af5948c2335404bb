import type { Command, Option } from 'commander';

/**
 * Shell completion. The shell scripts are thin: they hand the words typed so
 * far to `banger __complete`, which answers from the same command tree that
 * parses the command line, so completion can never drift from the CLI.
 * Each answer line is `candidate<TAB>description`.
 */

export interface Candidate {
  value: string;
  description: string;
}

/** Argument names whose values are objects the daemon knows; completed from its lists. */
export type ObjectKind = 'vm' | 'image' | 'kernel';
const OBJECT_ARGUMENTS: readonly string[] = ['vm', 'image', 'kernel'];

/** Names of existing objects of a kind (empty when the daemon is not running). */
export type ObjectLister = (kind: ObjectKind) => Promise<Candidate[]>;

/**
 * Candidates for the last word of `words` (the words after `banger`; the last
 * may be ''): subcommands, options, or, where the command expects a VM, image
 * or kernel, the names of existing ones.
 */
export async function complete(program: Command, words: readonly string[], listObjects: ObjectLister = () => Promise.resolve([])): Promise<Candidate[]> {
  let command = program;
  let positional = 0;
  const typed = words.slice(0, -1);
  const current = words.at(-1) ?? '';
  let afterDoubleDash = false;
  for (let i = 0; i < typed.length; i++) {
    const word = typed[i] ?? '';
    if (word === '--') {
      afterDoubleDash = true;
      break;
    }
    if (word.startsWith('-')) {
      const option = findOption(command, word);
      // Skip the value of an option that takes one (`-n 5`), unless given inline (`--lines=5`).
      if (option !== undefined && (option.required || option.optional) && !word.includes('=')) i++;
      continue;
    }
    const sub = visibleSubcommands(command).find((c) => c.name() === word || c.aliases().includes(word));
    if (sub !== undefined) command = sub;
    else positional++;
  }
  if (afterDoubleDash) return [];

  const candidates: Candidate[] = [];
  if (current.startsWith('-')) {
    for (const option of optionsInScope(command)) {
      for (const flag of [option.long, option.short]) {
        if (flag !== undefined) candidates.push({ value: flag, description: option.description });
      }
    }
  } else {
    for (const sub of visibleSubcommands(command)) {
      candidates.push({ value: sub.name(), description: sub.description() });
    }
    const argument = command.registeredArguments[positional];
    if (argument !== undefined && OBJECT_ARGUMENTS.includes(argument.name())) {
      candidates.push(...(await listObjects(argument.name() as ObjectKind)));
    }
  }
  return candidates.filter((c) => c.value.startsWith(current));
}

/** Subcommands as `--help` lists them (hidden ones excluded), via commander's public Help API. */
function visibleSubcommands(command: Command): readonly Command[] {
  return command.createHelp().visibleCommands(command);
}

/** The command's own options plus those inherited from its ancestors (`--json`, `--verbose`). */
function optionsInScope(command: Command): Option[] {
  const options: Option[] = [];
  for (let c: Command | null = command; c !== null; c = c.parent) {
    options.push(...c.createHelp().visibleOptions(c));
  }
  return options;
}

function findOption(command: Command, word: string): Option | undefined {
  const flag = word.split('=')[0];
  return optionsInScope(command).find((o) => o.long === flag || o.short === flag);
}

export type Shell = 'bash' | 'zsh' | 'fish';
export const SHELLS: readonly Shell[] = ['bash', 'zsh', 'fish'];

export function completionScript(shell: Shell): string {
  switch (shell) {
    case 'bash':
      return `# banger completion for bash. Load with: source <(banger completion bash)
_banger_complete() {
  local IFS=$'\\n'
  local line
  COMPREPLY=()
  while IFS= read -r line; do
    COMPREPLY+=("\${line%%$'\\t'*}")
  done < <(banger __complete "\${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null)
}
complete -o default -F _banger_complete banger
`;
    case 'zsh':
      return `#compdef banger
# banger completion for zsh. Load with: source <(banger completion zsh)
_banger() {
  local -a lines described
  lines=("\${(@f)$(banger __complete "\${(@)words[2,CURRENT]}" 2>/dev/null)}")
  local line
  for line in "\${lines[@]}"; do
    [[ -z "$line" ]] && continue
    described+=("\${\${line%%$'\\t'*}//:/\\\\:}:\${line#*$'\\t'}")
  done
  _describe -t commands 'banger' described
}
if (( $+functions[compdef] )); then compdef _banger banger; fi
`;
    case 'fish':
      return `# banger completion for fish. Load with: banger completion fish | source
function __banger_complete
    set -l words (commandline -opc)
    set -e words[1]
    banger __complete $words (commandline -ct) 2>/dev/null
end
complete -c banger -f -a '(__banger_complete)'
`;
  }
}
