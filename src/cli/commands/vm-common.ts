import { InvalidArgumentError, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { formatSpec } from '../../config/vm-defaults.js';
import type { VmInfo } from '../../rpc/methods.js';
import { DISK_SIZE_BYTES, INIT_MODES, MEMORY_MIB, NETWORK_MODES, VCPU, type InitMode, type NetworkMode } from '../../rpc/schemas.js';
import type { TextRule } from '../../rpc/validation.js';
import type { CliContext } from '../context.js';

/** Option parsers and the create path shared by `vm create`, `vm run` and `vm set`. */

/**
 * A commander argument parser for a rule of src/rpc/schemas.ts: the option
 * takes exactly what the daemon would accept, and a bad value is a usage
 * error (exit 2) before any daemon is started. Commander prefixes the message
 * with the option and the value.
 */
export function ruleParser<T>(rule: TextRule<T>): (value: string) => T {
  return (value) => {
    const checked = rule.parse(value);
    if (checked.ok) return checked.value;
    const { detail, hint } = checked.problem;
    throw new InvalidArgumentError(`${detail.charAt(0).toUpperCase()}${detail.slice(1)}${hint === undefined ? '' : ` (${hint})`}.`);
  };
}

export const parseVcpu = ruleParser(VCPU);
/** `--memory 2048` (MiB) or `--memory 2G`. */
export const parseMemory = ruleParser(MEMORY_MIB);
export const parseDiskSize = ruleParser(DISK_SIZE_BYTES);

/**
 * The spec options shared by `vm create` and `vm run`. Unset values resolve
 * config -> host heuristics -> floor when the command runs (see createVm):
 * reading config.toml is left out of every other command's start-up.
 */
export function addSpecOptions<T extends CommandUnknownOpts>(command: T): T {
  command
    .option('--name <name>', 'VM name (a DNS label; default: generated)')
    .option('--image <image>', 'image to boot (default: default_image from config, debian-bookworm; pulled on first use)')
    .addOption(
      new Option('--vcpu <count>', "virtual CPUs (default: [vm_defaults] in config.toml, else a quarter of the host's CPUs, 1-4)").argParser(parseVcpu),
    )
    .addOption(
      new Option('--memory <size>', "memory in MiB or with a unit, e.g. 2G (default: config, else an eighth of the host's RAM, 1-8G)").argParser(parseMemory),
    )
    .addOption(new Option('--disk-size <size>', 'work disk (/root) size (default: config, else 8G)').argParser(parseDiskSize))
    .addOption(
      new Option('--init <mode>', "guest init: minimal (fast: sshd under busybox init) or systemd (the image's own)")
        .choices(INIT_MODES)
        .default('minimal' as const),
    )
    .option('--nat', 'let the guest reach beyond the host (masqueraded); off by default: the guest reaches only the host')
    .addOption(
      new Option('--network <name>', 'isolated: no other guest is reachable; shared: reach (and be reached by) the other guests on the shared network')
        .choices(NETWORK_MODES)
        .default('isolated' as const),
    )
    .addHelpText(
      'after',
      '\nGuests resolve each other as <name>.vm (banger answers DNS); names beyond .vm resolve only with --nat.\n`banger doctor` shows the vcpu, memory and disk defaults on this host and where each comes from.',
    );
  return command;
}

export interface SpecOptions {
  name?: string;
  image?: string;
  vcpu?: number;
  memory?: number;
  diskSize?: number;
  init: InitMode;
  nat?: boolean;
  network: NetworkMode;
}

/** Said once per command that boots a VM without hardware acceleration. */
export function noteEmulation(cli: CliContext, info: VmInfo): void {
  if (info.accel === 'tcg') cli.out.notice('note: no usable KVM on this host: the VM runs under TCG emulation (slower); see `banger doctor`');
}

/**
 * Creates a VM from the flags given; the daemon fills in the rest (vm.defaults),
 * as it does for the SDK and MCP. The `spec:` line is printed first, from
 * the same defaults, so it says exactly what gets created.
 */
export async function createVm(cli: CliContext, options: SpecOptions, noStart: boolean): Promise<VmInfo> {
  const given = {
    ...(options.vcpu === undefined ? {} : { vcpu: options.vcpu }),
    ...(options.memory === undefined ? {} : { memoryMiB: options.memory }),
    ...(options.diskSize === undefined ? {} : { diskSizeBytes: options.diskSize }),
  };
  const defaults = await cli.call('vmDefaults', {});
  cli.out.notice(`spec: ${formatSpec({ vcpu: defaults.vcpu, memoryMiB: defaults.memoryMiB, diskSizeBytes: defaults.diskSizeBytes, ...given })}`);
  const info = await cli.callWithProgress('vmCreate', {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.image === undefined ? {} : { image: options.image }),
    ...given,
    init: options.init,
    nat: options.nat === true,
    network: options.network,
    noStart,
  });
  noteEmulation(cli, info);
  return info;
}
