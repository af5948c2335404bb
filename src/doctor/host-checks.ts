import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { findExecutable, isStaticElf } from '../host/executables.js';
import { detectKvm, type KvmHost } from '../host/kvm.js';
import type { BangerConfig } from '../config/schema.js';
import { toBangerError } from '../rpc/errors.js';
import { DEBIAN_KEYRING } from '../services/debian/archive.js';
import { selectDriver } from '../vmm/select.js';
import { check, type CheckResult } from './report.js';

export function architectureCheck(arch: string = process.arch): CheckResult {
  if (arch === 'x64') return check('arch', 'architecture', 'pass', 'x86_64');
  return check(
    'arch',
    'architecture',
    'fail',
    `${arch} is not supported`,
    'banger runs x86_64 guests only: its kernel catalog, images and initramfs are x86_64; use an x86_64 Linux host',
  );
}

const TCG_NOTE = 'VMs will run under TCG emulation: they work, but boot and run several times slower';

export function kvmCheck(host?: KvmHost): CheckResult {
  const state = detectKvm(host);
  switch (state.kind) {
    case 'usable':
      return check('kvm', 'kvm', 'pass', `/dev/kvm usable (${state.module})`);
    case 'pvm':
      return check(
        'kvm',
        'kvm',
        'warn',
        `/dev/kvm is present but unusable: it is PVM (kvm_pvm), which only runs PVM-enabled guest kernels. ${TCG_NOTE}`,
        'nothing to do on this host; on bare metal or with nested KVM (kvm_intel/kvm_amd) banger uses hardware acceleration',
      );
    case 'no-access':
      return check(
        'kvm',
        'kvm',
        'warn',
        `/dev/kvm exists but you cannot open it for read/write. ${TCG_NOTE}`,
        'add yourself to the kvm group: sudo usermod -aG kvm $USER (then log in again)',
      );
    case 'unknown-module':
      return check(
        'kvm',
        'kvm',
        'warn',
        `/dev/kvm is present but no kvm_intel/kvm_amd module is loaded; banger will probe it and may fall back to TCG`,
        'load kvm_intel or kvm_amd if your CPU supports virtualization',
      );
    case 'absent':
      return check(
        'kvm',
        'kvm',
        'warn',
        `/dev/kvm is absent. ${TCG_NOTE}`,
        'enable virtualization in the firmware and load kvm_intel or kvm_amd (or enable nested virtualization on a cloud VM)',
      );
  }
}

interface ToolSpec {
  name: string;
  /** Debian/Ubuntu package that provides it. */
  pkg: string;
  purpose: string;
  /** Missing optional tools warn; missing required tools fail. */
  required: boolean;
}

const HOST_TOOLS: readonly ToolSpec[] = [
  { name: 'ip', pkg: 'iproute2', purpose: 'bridge and tap devices', required: true },
  { name: 'nft', pkg: 'nftables', purpose: 'NAT for guest internet access', required: false },
  { name: 'mkfs.ext4', pkg: 'e2fsprogs', purpose: 'building VM disks', required: true },
  { name: 'e2fsck', pkg: 'e2fsprogs', purpose: 'repairing VM disks after a crash', required: true },
  { name: 'debugfs', pkg: 'e2fsprogs', purpose: 'reading VM disks without mounting', required: true },
  { name: 'ssh', pkg: 'openssh-client', purpose: '`banger vm ssh`', required: true },
  { name: 'git', pkg: 'git', purpose: 'copying repos into VMs', required: true },
  { name: 'zstd', pkg: 'zstd', purpose: 'unpacking images', required: true },
  { name: 'xz', pkg: 'xz-utils', purpose: 'unpacking Debian packages and indexes', required: true },
  { name: 'gpgv', pkg: 'gpgv', purpose: "verifying Debian's signed archive index", required: true },
  { name: 'mmdebstrap', pkg: 'mmdebstrap', purpose: 'building catalog images', required: true },
  { name: 'dropbear', pkg: 'dropbear-bin', purpose: 'the SSH server banger adds to images from registries', required: false },
];

/** Binary paths configured in config.toml (qemu_bin, firecracker_bin); unset means search PATH. */
export interface ConfiguredBinaries {
  qemuBin?: string | undefined;
  firecrackerBin?: string | undefined;
}

export function hostToolChecks(env: NodeJS.ProcessEnv, configured: ConfiguredBinaries = {}): CheckResult[] {
  return [
    qemuCheck(env, configured.qemuBin),
    firecrackerCheck(env, configured.firecrackerBin),
    busyboxCheck(env),
    ...HOST_TOOLS.map((tool) => toolCheck(tool, env)),
    keyringCheck(),
  ];
}

export function keyringCheck(path: string = DEBIAN_KEYRING): CheckResult {
  return existsSync(path)
    ? check('debian-keyring', 'debian keyring', 'pass', path)
    : check(
        'debian-keyring',
        'debian keyring',
        'fail',
        `${path} is missing (needed to verify kernel and image downloads)`,
        'apt-get install debian-archive-keyring',
      );
}

function toolCheck(tool: ToolSpec, env: NodeJS.ProcessEnv): CheckResult {
  const path = findExecutable(tool.name, env);
  const id = `tool.${tool.name}`;
  if (path !== undefined) return check(id, tool.name, 'pass', path);
  return check(id, tool.name, tool.required ? 'fail' : 'warn', `not found (needed for ${tool.purpose})`, `apt-get install ${tool.pkg}`);
}

function qemuCheck(env: NodeJS.ProcessEnv, configured: string | undefined): CheckResult {
  const path = findExecutable(configured ?? 'qemu-system-x86_64', env);
  if (path === undefined) {
    return check(
      'tool.qemu',
      'qemu-system-x86_64',
      'fail',
      'not found: banger boots VMs with QEMU when Firecracker is unavailable',
      'apt-get install qemu-system-x86',
    );
  }
  return check('tool.qemu', 'qemu-system-x86_64', 'pass', `${path} (${commandVersion(path) ?? 'version unknown'})`);
}

function firecrackerCheck(env: NodeJS.ProcessEnv, configured: string | undefined): CheckResult {
  const path = findExecutable(configured ?? 'firecracker', env);
  if (path === undefined) {
    return check('tool.firecracker', 'firecracker', 'pass', 'not installed (optional; vmm = auto uses QEMU)');
  }
  return check('tool.firecracker', 'firecracker', 'pass', `${path} (${commandVersion(path) ?? 'version unknown'})`);
}

function busyboxCheck(env: NodeJS.ProcessEnv): CheckResult {
  const path = findExecutable('busybox', env);
  const hint = 'apt-get install busybox-static';
  if (path === undefined) return check('tool.busybox', 'busybox-static', 'fail', 'not found (needed for the guest initramfs)', hint);
  let isStatic = false;
  try {
    isStatic = isStaticElf(path);
  } catch {
    // unreadable: reported as not static below
  }
  if (!isStatic) return check('tool.busybox', 'busybox-static', 'fail', `${path} is dynamically linked; the guest initramfs needs a static busybox`, hint);
  return check('tool.busybox', 'busybox-static', 'pass', `${path} (static)`);
}

/** First line of `<tool> --version`, or undefined when it will not say. */
function commandVersion(path: string): string | undefined {
  try {
    const output = execFileSync(path, ['--version'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    const first = output.split('\n')[0]?.trim() ?? '';
    return first === '' ? undefined : first;
  } catch {
    return undefined;
  }
}

/** Which VMM `vmm = auto|qemu|firecracker` resolves to on this host, and why. */
export function vmmCheck(config: BangerConfig | undefined, env: NodeJS.ProcessEnv, host?: KvmHost): CheckResult {
  const vmm = config ?? { vmm: 'auto' as const };
  try {
    const choice = selectDriver(vmm, env, detectKvm(host));
    return check('vmm', 'vmm', 'pass', `vmm = ${vmm.vmm}: ${choice.reason}`);
  } catch (error) {
    const banger = toBangerError(error);
    return check('vmm', 'vmm', 'fail', `vmm = ${vmm.vmm}: ${banger.message}`, banger.hint);
  }
}
