import { Command, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { formatSpec } from '../../config/vm-defaults.js';
import type { VmInfo, WorkspaceInfo } from '../../rpc/methods.js';
import { createContext, setExitCode } from '../context.js';
import { GUEST_EXIT_STATUS_HELP } from '../exit-codes.js';
import { execInVm } from '../guest-exec.js';
import { runSsh, sshArgs } from '../guest-ssh.js';
import { LOG_LINES, LOG_LINES_DEFAULT } from '../../rpc/schemas.js';
import { addSpecOptions, createVm, noteEmulation, parseDiskSize, parseMemory, parseVcpu, ruleParser, type SpecOptions } from './vm-common.js';
import { vmDeleteCommand } from './vm-delete.js';
import { vmListCommand } from './vm-list.js';
import { vmRunCommand } from './vm-run.js';
import { formatStatsSummary, vmPortsCommand, vmStatsCommand } from './vm-stats.js';
import { workspaceCommand } from './workspace.js';

export function vmCommand(): CommandUnknownOpts {
  const vm = new Command('vm').description('Create, run and manage microVMs').addHelpText(
    'after',
    `
Examples:
  banger vm run -- uname -a                 throwaway VM: create, run, keep (prints next steps)
  banger vm run --rm -- make test           ...and delete it afterwards; exit status passes through
  banger vm run ./repo --rm -- make test    with your repo in /root/repo
  banger vm create --name box --vcpu 2      a VM to keep
  banger vm workspace prepare box ./repo    copy a repo into it
  banger vm exec box -- git status          run a command in it (in the workspace)
  banger vm workspace export box | git apply   its edits, back here
  banger vm ssh box                         a shell in it
  banger vm stop box; banger vm delete box

VMs are referred to by name or id, or a unique prefix of either.`,
  );

  addSpecOptions(vm.command('create').description('Create a VM and boot it (pulling its image on first use)'))
    .option('--no-start', 'prepare the VM without booting it')
    .action(async (options, command) => {
      const cli = createContext(command);
      // addSpecOptions added these options; its generic return type cannot carry them.
      const info = await createVm(cli, options as typeof options & SpecOptions, !options.start);
      cli.out.result(info, (v) => `created VM ${v.name} (${v.id}), ${v.state}, ${v.ip}`);
    });

  vm.addCommand(vmRunCommand());

  vm.addCommand(vmListCommand('list'));

  vm.command('show')
    .description('Show one VM')
    .argument('<vm>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      cli.out.result(await cli.call('vmShow', { ref }), renderVm);
    });

  for (const [name, key, description, verb] of [
    ['start', 'vmStart', 'Boot a stopped VM', 'started'],
    ['stop', 'vmStop', 'Shut a VM down gracefully (then ACPI, then kill)', 'stopped'],
    ['restart', 'vmRestart', 'Stop and start a VM (applies `vm set` changes)', 'restarted'],
    ['kill', 'vmKill', 'Stop a VM at once, without shutting the guest down', 'killed'],
  ] as const) {
    vm.command(name)
      .description(description)
      .argument('<vm>', 'name or id')
      .action(async (ref, _options, command) => {
        const cli = createContext(command);
        const info = await cli.callWithProgress(key, { ref });
        noteEmulation(cli, info);
        cli.out.result(info, (v) => `${verb} VM ${v.name} (${v.state})`);
      });
  }

  vm.addCommand(vmDeleteCommand());

  vm.command('set')
    .description('Change vcpu, memory or disk size (on the next start; the disk only grows) or NAT (at once)')
    .argument('<vm>', 'name or id')
    .option('--vcpu <count>', 'virtual CPUs', parseVcpu)
    .option('--memory <size>', 'memory in MiB or with a unit', parseMemory)
    .option('--disk-size <size>', 'work disk size (grow only)', parseDiskSize)
    .option('--nat', 'let the guest reach beyond the host (applied at once to a running VM)')
    .option('--no-nat', 'cut the guest off from everything beyond the host (at once)')
    .action(async (ref, options, command) => {
      const cli = createContext(command);
      const info = await cli.call('vmSet', {
        ref,
        ...(options.nat === undefined ? {} : { nat: options.nat }),
        ...(options.vcpu === undefined ? {} : { vcpu: options.vcpu }),
        ...(options.memory === undefined ? {} : { memoryMiB: options.memory }),
        ...(options.diskSize === undefined ? {} : { diskSizeBytes: options.diskSize }),
      });
      const restart = options.vcpu !== undefined || options.memory !== undefined || options.diskSize !== undefined;
      cli.out.result(
        info,
        (v) =>
          `VM ${v.name}: ${formatSpec(v.spec)}, NAT ${v.spec.nat ? 'on' : 'off'}${v.state === 'running' && restart ? ' (restart to apply vcpu, memory and disk)' : ''}`,
      );
    });

  vm.command('logs')
    .description("Show the VM's serial console")
    .argument('<vm>', 'name or id')
    .option('-n, --lines <count>', 'lines from the end', ruleParser(LOG_LINES), LOG_LINES_DEFAULT)
    .action(async (ref, options, command) => {
      const cli = createContext(command);
      const result = await cli.call('vmLogs', { ref, lines: options.lines });
      cli.out.result(result, (r) => r.lines.join('\n'));
    });

  vm.command('ssh')
    .description("Open a shell in a VM (or run a command) with the system ssh and banger's key")
    .argument('<vm>', 'name or id')
    .argument('[command...]', 'command to run instead of a shell (after --)')
    .action(async (ref, command, _options, cmd) => {
      const cli = createContext(cmd);
      const target = await cli.call('vmSshTarget', { ref });
      const tty = command.length === 0 ? process.stdin.isTTY : process.stdin.isTTY && process.stdout.isTTY;
      setExitCode(await runSsh(sshArgs(target, { interactive: true, tty, command })));
    });

  vm.command('exec')
    .description('Run a command in a running VM (in its workspace, if it has one); its exit status passes through')
    .argument('<vm>', 'name or id')
    .argument('<command...>', 'command to run (after --)')
    .option('--auto-prepare', 'if the workspace is behind the host repo, copy the repo in again first')
    .option('-t, --tty', 'allocate a terminal (default: when stdin and stdout are terminals)')
    .option('-T, --no-tty', 'never allocate a terminal')
    .option('-n, --no-stdin', 'do not forward stdin (the command reads end-of-file)')
    .addHelpText(
      'after',
      `
The command runs over the daemon's open connection to the VM: stdin, stdout and
stderr stream through, the first Ctrl-C goes to the command (a second one stops
it), and the exit status passes through. With a workspace it runs in the
workspace directory, through \`mise exec --\` when mise is installed in the guest;
when the host repo has moved on since the workspace was prepared, a warning says
so (--auto-prepare re-syncs instead).

${GUEST_EXIT_STATUS_HELP}`,
    )
    .action(async (ref, command, options, cmd) => {
      const cli = createContext(cmd);
      setExitCode(await execInVm(cli, { ref, command, tty: options.tty, stdin: options.stdin, autoPrepare: options.autoPrepare === true }));
    });

  vm.addCommand(vmStatsCommand());
  vm.addCommand(vmPortsCommand());
  vm.addCommand(workspaceCommand());

  return vm;
}

function renderVm(v: VmInfo): string {
  return [
    `name:     ${v.name}`,
    `id:       ${v.id}`,
    `state:    ${v.state}${v.accel === null ? '' : ` (${v.accel}, pid ${v.pid ?? '?'})`}`,
    `image:    ${v.image}`,
    `ip:       ${v.ip}`,
    `spec:     ${formatSpec(v.spec)}, ${v.spec.init} init`,
    ...(v.stats === null ? [] : [`stats:    ${formatStatsSummary(v.stats)}`]),
    ...(v.lastError === null ? [] : [`error:    ${v.lastError}`]),
    ...(v.workspace === null ? [] : renderWorkspace(v.workspace)),
    `created:  ${v.createdAt}`,
  ].join('\n');
}

function renderWorkspace(ws: WorkspaceInfo): string[] {
  return [
    `workspace: ${ws.guestPath} from ${ws.sourcePath}`,
    `  base:   ${ws.baseCommit}${ws.branch === null ? '' : ` (guest branch ${ws.branch})`}`,
    `  mode:   ${ws.mode}${ws.includeUntracked ? ', untracked files included' : ''}, prepared ${ws.preparedAt}`,
  ];
}
