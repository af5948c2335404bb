import { InvalidArgumentError, Option, type CommandUnknownOpts } from '@commander-js/extra-typings';

import { parseSizeOrUndefined } from '../../config/sizes.js';
import { formatSpec } from '../../config/vm-defaults.js';
import type { VmInfo } from '../../rpc/methods.js';
import type { CliContext } from '../context.js';

/** Option parsers and the create path shared by `vm create`, `vm run` and `vm set`. */

export function parseIntOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** `--memory 2048` (MiB) or `--memory 2G`. */
export function parseMemory(value: string): number {
  const asNumber = Number(value);
  if (Number.isInteger(asNumber) && asNumber >= 128) return asNumber;
  const bytes = parseSizeOrUndefined(value);
  if (bytes === undefined || bytes % (1024 * 1024) !== 0 || bytes < 128 * 1024 * 1024) {
    throw new InvalidArgumentError(`expected MiB (at least 128) or a size like "2G", got "${value}"`);
  }
  return bytes / (1024 * 1024);
}

export function parseDiskSize(value: string): number {
  const bytes = parseSizeOrUndefined(value);
  if (bytes === undefined || bytes < 1024 ** 3) throw new InvalidArgumentError(`expected a size of at least 1G like "8G", got "${value}"`);
  return bytes;
}

const INIT_CHOICES = ['minimal', 'systemd'] as const;
const NETWORK_CHOICES = ['isolated', 'shared'] as const;

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
      new Option('--vcpu <count>', "virtual CPUs (default: [vm_defaults] in config.toml, else a quarter of the host's CPUs, 1-4)").argParser(
        parseIntOption(1, 64),
      ),
    )
    .addOption(
      new Option('--memory <size>', "memory in MiB or with a unit, e.g. 2G (default: config, else an eighth of the host's RAM, 1-8G)").argParser(parseMemory),
    )
    .addOption(new Option('--disk-size <size>', 'work disk (/root) size (default: config, else 8G)').argParser(parseDiskSize))
    .addOption(
      new Option('--init <mode>', "guest init: minimal (fast: sshd under busybox init) or systemd (the image's own)")
        .choices(INIT_CHOICES)
        .default('minimal' as const),
    )
    .option('--nat', 'let the guest reach beyond the host (masqueraded); off by default: the guest reaches only the host')
    .addOption(
      new Option('--network <name>', 'isolated: no other guest is reachable; shared: reach (and be reached by) the other guests on the shared network')
        .choices(NETWORK_CHOICES)
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
  init: 'minimal' | 'systemd';
  nat?: boolean;
  network: 'isolated' | 'shared';
}

/** The spec to create: the flags given, the resolved defaults for the rest. */
async function resolveSpec(cli: CliContext, options: SpecOptions): Promise<{ vcpu: number; memoryMiB: number; diskSizeBytes: number }> {
  const { cliVmDefaults } = await import('../vm-defaults.js');
  const d = cliVmDefaults(cli.layout, cli.pathEnv.home);
  return { vcpu: options.vcpu ?? d.vcpu.value, memoryMiB: options.memory ?? d.memoryMiB.value, diskSizeBytes: options.diskSize ?? d.diskSizeBytes.value };
}

/** Said once per command that boots a VM without hardware acceleration. */
export function noteEmulation(cli: CliContext, info: VmInfo): void {
  if (info.accel === 'tcg') cli.out.notice('note: no usable KVM on this host: the VM runs under TCG emulation (slower); see `banger doctor`');
}

export async function createVm(cli: CliContext, options: SpecOptions, noStart: boolean): Promise<VmInfo> {
  const spec = await resolveSpec(cli, options);
  cli.out.notice(`spec: ${formatSpec(spec)}`);
  const info = await cli.callWithProgress('vmCreate', {
    ...(options.name === undefined ? {} : { name: options.name }),
    ...(options.image === undefined ? {} : { image: options.image }),
    ...spec,
    init: options.init,
    nat: options.nat === true,
    network: options.network,
    noStart,
  });
  noteEmulation(cli, info);
  return info;
}
