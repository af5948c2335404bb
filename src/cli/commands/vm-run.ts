import { Command } from '@commander-js/extra-typings';

import { BangerError } from '../../rpc/errors.js';
import type { VmInfo, WorkspacePrepareResult } from '../../rpc/methods.js';
import { createContext, setExitCode, wasInterrupted, type CliContext } from '../context.js';
import { execInVm } from '../guest-exec.js';
import { GUEST_EXIT_STATUS_HELP } from '../exit-codes.js';
import { runSsh, sshArgs } from '../guest-ssh.js';
import { shellQuote } from '../../guest/shell.js';
import { addSpecOptions, createVm, type SpecOptions } from './vm-common.js';
import { addWorkspaceOptions, checkWorkspace, exportWorkspace, prepareWorkspace, printDryRun, type WorkspaceOptions } from './workspace.js';

interface RunOptions extends SpecOptions, WorkspaceOptions {
  rm?: true;
  export?: string;
  tty?: boolean;
  stdin: boolean;
}

/**
 * `vm run [path] [options] [-- command...]`: create a VM, copy the repo at
 * `path` into it (when given), run the command there (or open a shell),
 * optionally export the guest's edits, optionally delete the VM. A VM this
 * command created is deleted again if setting it up fails; with --rm it is
 * deleted after Ctrl-C or SIGTERM too.
 */
export function vmRunCommand(): Command<[string[]]> {
  const run = addSpecOptions(new Command('run'))
    .description('Create a VM, copy a repo into it, run a command there, and pass its exit status through')
    .argument('[args...]', '[path] -- command...: a directory of a git repo to copy in, then the command after --')
    .option('--rm', 'delete the VM when the command ends (also after Ctrl-C or SIGTERM)')
    .option('--export <file>', "write a patch of the guest's changes to <file> after the command (before --rm deletes the VM)")
    .option('-t, --tty', 'allocate a terminal for the command (default: when stdin and stdout are terminals)')
    .option('-T, --no-tty', 'never allocate a terminal')
    .option('-n, --no-stdin', 'do not forward stdin (the command reads end-of-file)')
    .addHelpText(
      'after',
      `
Examples:
  banger vm run -- uname -a                          throwaway VM, kept afterwards (prints next steps)
  banger vm run --rm -- make test                    ...deleted afterwards; the exit status passes through
  banger vm run ./repo --rm -- make test             with the repo's tracked files in /root/repo
  banger vm run ./repo --rm --export out.patch -- ./agent.sh
                                                     an agent's edits come back as out.patch
  banger vm run ./repo                               no command: a shell in the new VM's workspace
  banger vm run ./repo --dry-run                     what would be copied; creates nothing

${GUEST_EXIT_STATUS_HELP}
With no command (a shell), the shell's status.`,
    );
  addWorkspaceOptions(run);
  return run.action(async (args, options, command) => {
    const cli = createContext(command);
    const opts = options as typeof options & RunOptions;
    const { path, argv } = splitRunArgs(args, rawArgsOf(command));
    if (path === undefined && opts.dryRun === true)
      throw new BangerError('ERR_USAGE', '--dry-run needs a repo path', { hint: 'banger vm run ./repo --dry-run' });
    if (path === undefined && opts.export !== undefined)
      throw new BangerError('ERR_USAGE', '--export needs a repo path: it exports the workspace', {
        hint: 'banger vm run ./repo --export out.patch -- <command>',
      });
    const snapshot = path === undefined ? undefined : await checkWorkspace(path, opts);
    if (snapshot !== undefined && opts.dryRun === true) {
      printDryRun(cli, snapshot, opts);
      return;
    }

    const vm = await createVm(cli, opts, false);
    let prepared: WorkspacePrepareResult | undefined;
    let status: number;
    try {
      if (snapshot !== undefined) prepared = await setUp(cli, vm, () => prepareWorkspace(cli, vm.id, snapshot.root, opts));
      if (argv.length === 0) {
        const target = await cli.call('vmSshTarget', { ref: vm.id });
        const shell = prepared === undefined ? undefined : ['sh', '-c', `cd ${shellQuote(prepared.workspace.guestPath)} && exec "\${SHELL:-/bin/sh}" -l`];
        status = await runSsh(sshArgs(target, { interactive: true, tty: process.stdin.isTTY, ...(shell === undefined ? {} : { command: shell }) }));
      } else {
        status = await execInVm(cli, { ref: vm.id, command: argv, tty: opts.tty, stdin: opts.stdin, autoPrepare: false });
      }
      if (opts.export !== undefined && !wasInterrupted()) {
        const exported = await exportWorkspace(cli, vm.id, { output: opts.export, stat: false });
        cli.out.notice(`exported ${exported.files.length} changed file${exported.files.length === 1 ? '' : 's'} to ${opts.export}`);
      }
    } finally {
      if (opts.rm === true)
        await cli.callUninterruptible('vmDelete', { ref: vm.id }).catch((error: unknown) => {
          cli.out.error(error);
        });
    }
    if (opts.rm !== true) printNextSteps(cli, vm, prepared);
    setExitCode(status);
  });
}

/** Runs a set-up step of a VM this command created; on failure the VM is deleted before the error surfaces. */
async function setUp<T>(cli: CliContext, vm: VmInfo, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await cli.callUninterruptible('vmDelete', { ref: vm.id }).catch(() => undefined);
    throw error;
  }
}

function printNextSteps(cli: CliContext, vm: VmInfo, prepared: WorkspacePrepareResult | undefined): void {
  cli.out.notice(
    [
      `VM ${vm.name} is still running (${vm.ip}). Next:`,
      `  banger vm ssh ${vm.name}`,
      `  banger vm exec ${vm.name} -- <command>${prepared === undefined ? '' : `   (runs in ${prepared.workspace.guestPath})`}`,
      ...(prepared === undefined ? [] : [`  banger vm workspace export ${vm.name} | git apply`]),
      `  banger vm delete ${vm.name}`,
    ].join('\n'),
  );
}

/** The raw argv of the whole command line (commander keeps it on the root command). */
function rawArgsOf(command: { parent: unknown }): string[] {
  let node = command as { parent: unknown; rawArgs?: unknown };
  while (node.parent !== null && node.parent !== undefined) node = node.parent as typeof node;
  return Array.isArray(node.rawArgs) ? (node.rawArgs as string[]) : [];
}

/**
 * Splits `vm run`'s operands: what comes after `--` is the command; at most
 * one operand before it, the repo path. Without `--`, a lone operand is the
 * path (and no command means a shell).
 */
export function splitRunArgs(operands: readonly string[], raw: readonly string[]): { path: string | undefined; argv: string[] } {
  const dash = raw.indexOf('--');
  const afterDash = dash < 0 ? 0 : raw.length - dash - 1;
  const before = operands.slice(0, operands.length - afterDash);
  const argv = operands.slice(operands.length - afterDash);
  if (before.length > 1) {
    throw new BangerError('ERR_USAGE', `expected at most one path before --, got ${before.length}: ${before.join(' ')}`, {
      hint: 'put the command after --: banger vm run [path] -- <command...>',
    });
  }
  return { path: before[0], argv };
}
