import { Command, InvalidArgumentError, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { currentPathEnv, resolveLayout } from '../../config/paths.js';
import { formatSize, parseSizeOrUndefined } from '../../config/sizes.js';
import { formatSpec } from '../../config/vm-defaults.js';
import type { VmInfo } from '../../rpc/methods.js';
import { createContext, setExitCode, type CliContext } from '../context.js';
import { runSsh, sshArgs } from '../guest-ssh.js';
import { formatDuration, table } from '../render/text.js';
import { cliVmDefaults } from '../vm-defaults.js';

function parseIntOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** `--memory 2048` (MiB) or `--memory 2G`. */
function parseMemory(value: string): number {
  const asNumber = Number(value);
  if (Number.isInteger(asNumber) && asNumber >= 128) return asNumber;
  const bytes = parseSizeOrUndefined(value);
  if (bytes === undefined || bytes % (1024 * 1024) !== 0 || bytes < 128 * 1024 * 1024) {
    throw new InvalidArgumentError(`expected MiB (at least 128) or a size like "2G", got "${value}"`);
  }
  return bytes / (1024 * 1024);
}

function parseDiskSize(value: string): number {
  const bytes = parseSizeOrUndefined(value);
  if (bytes === undefined || bytes < 1024 ** 3) throw new InvalidArgumentError(`expected a size of at least 1G like "8G", got "${value}"`);
  return bytes;
}

const INIT_CHOICES = ['minimal', 'systemd'] as const;

/** The spec options shared by `vm create` and `vm run`, defaulting to config -> host -> floor. */
function addSpecOptions<T extends CommandUnknownOpts>(command: T): T {
  const pathEnv = currentPathEnv();
  const d = cliVmDefaults(resolveLayout(pathEnv), pathEnv.home);
  command
    .option('--name <name>', 'VM name (a DNS label; default: generated)')
    .option('--image <image>', 'image to boot (default: default_image from config, debian-bookworm; pulled on first use)')
    .addOption(new Option('--vcpu <count>', `virtual CPUs (${d.vcpu.source})`).argParser(parseIntOption(1, 64)).default(d.vcpu.value))
    .addOption(new Option('--memory <size>', `memory in MiB or with a unit, e.g. 2G (${d.memoryMiB.source})`).argParser(parseMemory).default(d.memoryMiB.value))
    .addOption(new Option('--disk-size <size>', `work disk (/root) size (${d.diskSizeBytes.source})`).argParser(parseDiskSize).default(d.diskSizeBytes.value, formatSize(d.diskSizeBytes.value)))
    .addOption(new Option('--init <mode>', 'guest init: minimal (fast: sshd under busybox init) or systemd (the image\'s own)').choices(INIT_CHOICES).default('minimal' as const));
  return command;
}

interface SpecOptions {
  name?: string;
  image?: string;
  vcpu: number;
  memory: number;
  diskSize: number;
  init: 'minimal' | 'systemd';
}

/** Said once per command that boots a VM without hardware acceleration. */
function noteEmulation(cli: CliContext, info: VmInfo): void {
  if (info.accel === 'tcg') cli.out.notice('note: no usable KVM on this host: the VM runs under TCG emulation (slower); see `banger doctor`');
}

async function createVm(cli: CliContext, options: SpecOptions, noStart: boolean): Promise<VmInfo> {
  cli.out.notice(`spec: ${formatSpec({ vcpu: options.vcpu, memoryMiB: options.memory, diskSizeBytes: options.diskSize })}`);
  const info = await cli.callWithProgress('vmCreate', {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.image === undefined ? {} : { image: options.image }),
    vcpu: options.vcpu,
    memoryMiB: options.memory,
    diskSizeBytes: options.diskSize,
    init: options.init,
    noStart,
  });
  noteEmulation(cli, info);
  return info;
}

/** Runs `command` in the VM over the system ssh; returns the guest command's exit status. */
async function execInVm(cli: CliContext, ref: string, command: readonly string[]): Promise<number> {
  const target = await cli.call('vmSshTarget', { ref });
  const tty = process.stdin.isTTY && process.stdout.isTTY;
  return runSsh(sshArgs(target, { interactive: false, tty, command }));
}

export function vmCommand(): CommandUnknownOpts {
  const vm = new Command('vm').description('Create, run and manage microVMs').addHelpText(
    'after',
    `
Examples:
  banger vm run -- uname -a                 throwaway VM: create, run, keep (prints next steps)
  banger vm run --rm -- make test           ...and delete it afterwards; exit status passes through
  banger vm create --name box --vcpu 2      a VM to keep
  banger vm exec box -- git --version       run a command in it
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

  addSpecOptions(vm.command('run').description('Create a VM, run a command in it over SSH, and pass its exit status through'))
    .option('--rm', 'delete the VM when the command ends')
    .argument('<command...>', 'command to run in the guest (after --)')
    .action(async (command, options, cmd) => {
      const cli = createContext(cmd);
      const info = await createVm(cli, options as typeof options & SpecOptions, false);
      let status: number;
      try {
        status = await execInVm(cli, info.id, command);
      } finally {
        if (options.rm === true) await cli.call('vmDelete', { ref: info.id });
      }
      if (options.rm !== true) {
        cli.out.notice(
          [
            `VM ${info.name} is still running (${info.ip}). Next:`,
            `  banger vm ssh ${info.name}`,
            `  banger vm exec ${info.name} -- <command>`,
            `  banger vm delete ${info.name}`,
          ].join('\n'),
        );
      }
      setExitCode(status);
    });

  vm.command('list')
    .alias('ps')
    .description('List VMs with their state, image, address and spec')
    .action(async (_options, command) => {
      const cli = createContext(command);
      const result = await cli.call('vmList', {});
      cli.out.result(result, ({ vms }) =>
        vms.length === 0
          ? 'no VMs (create one with `banger vm run -- <command>` or `banger vm create`)'
          : table([
              ['NAME', 'ID', 'STATE', 'IMAGE', 'IP', 'SPEC', 'CREATED'],
              ...vms.map((v) => [v.name, v.id, v.state, v.image, v.ip, formatSpec(v.spec), `${formatDuration(Date.now() - Date.parse(v.createdAt))} ago`]),
            ]),
      );
    });

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

  vm.command('delete')
    .alias('rm')
    .description('Delete a VM and its disks (a running VM is killed first)')
    .argument('<vm>', 'name or id')
    .action(async (ref, _options, command) => {
      const cli = createContext(command);
      const info = await cli.callWithProgress('vmDelete', { ref });
      cli.out.result(info, (v) => `deleted VM ${v.name} (${v.id})`);
    });

  vm.command('set')
    .description('Change vcpu, memory or disk size; applies on the next start (the disk only grows)')
    .argument('<vm>', 'name or id')
    .option('--vcpu <count>', 'virtual CPUs', parseIntOption(1, 64))
    .option('--memory <size>', 'memory in MiB or with a unit', parseMemory)
    .option('--disk-size <size>', 'work disk size (grow only)', parseDiskSize)
    .action(async (ref, options, command) => {
      const cli = createContext(command);
      const info = await cli.call('vmSet', {
        ref,
        ...(options.vcpu === undefined ? {} : { vcpu: options.vcpu }),
        ...(options.memory === undefined ? {} : { memoryMiB: options.memory }),
        ...(options.diskSize === undefined ? {} : { diskSizeBytes: options.diskSize }),
      });
      cli.out.result(info, (v) => `VM ${v.name}: ${formatSpec(v.spec)}${v.state === 'running' ? ' (restart to apply)' : ''}`);
    });

  vm.command('logs')
    .description("Show the VM's serial console")
    .argument('<vm>', 'name or id')
    .option('-n, --lines <count>', 'lines from the end', parseIntOption(1, 100_000), 100)
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
    .description('Run a command in a running VM; its exit status passes through')
    .argument('<vm>', 'name or id')
    .argument('<command...>', 'command to run (after --)')
    .action(async (ref, command, _options, cmd) => {
      const cli = createContext(cmd);
      setExitCode(await execInVm(cli, ref, command));
    });

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
    ...(v.lastError === null ? [] : [`error:    ${v.lastError}`]),
    `created:  ${v.createdAt}`,
  ].join('\n');
}
