import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { VM_CONSOLE_SOCKET, VM_VMM_LOG } from '../../config/filenames.js';
import { hostTscKhz } from '../../host/tsc.js';
import { BangerError } from '../../rpc/errors.js';
import { initramfsArgs, type DriverFeatures, type LaunchSpec, type VmmDriver, type VmmHandle } from '../driver.js';
import { killProcess, pidAlive, processMatches } from '../../host/process.js';
import { probeAccel } from './accel-probe.js';
import { CONSOLE_CHARDEV } from './qemu-console.js';
import { qmpCommand } from './qmp.js';
import { qemuOptionValue as v } from './qemu-options.js';
import { probeSandbox, SANDBOX_OPTIONS, type SandboxSupport } from './sandbox-probe.js';

export const QMP_SOCKET = 'qmp.sock';

const START_TIMEOUT_MS = 10_000;
const KVM_PROBE_TIMEOUT_MS = 15_000;

export type Accel = 'kvm' | 'tcg';

/**
 * What identifies a VM's QEMU in /proc/<pid>/cmdline (against pid reuse):
 * its QMP socket path as it appears there, commas doubled by the escaping.
 */
export function qemuProcessMarker(controlSocket: string): string {
  return v(controlSocket);
}

/** QEMU flags for an accelerator: KVM with the host CPU, or multi-threaded TCG with a 64 MiB translation cache. */
export function accelArgs(accel: Accel): string[] {
  return accel === 'kvm' ? ['-accel', 'kvm', '-cpu', 'host'] : ['-accel', 'tcg,thread=multi,tb-size=64', '-cpu', 'max'];
}

/**
 * QEMU's microvm machine: PVH boot of the extracted vmlinux with banger's
 * initramfs, virtio-mmio disks and net, QMP on a unix socket in the runtime
 * dir. Under TCG (no usable KVM)
 * the guest gets `tsc_early_khz` from the host, without which microvm stalls
 * calibrating its TSC, and a smaller translation cache (tb-size=64 MiB).
 *
 * QEMU runs confined by its seccomp sandbox (SANDBOX_OPTIONS) when the
 * binary supports it, probed once per driver on the first start; without
 * it, VMs still start, and each VM's vmm.log says why it ran unconfined.
 *
 * The serial console is a unix socket QEMU listens on (console.sock in the
 * runtime dir), read by the daemon's ConsoleRecorder, which keeps a capped,
 * rotated console.log. QEMU never writes the guest's output to disk itself,
 * so a guest cannot fill the host's disk, with or without a daemon: while no
 * reader is connected QEMU drops the bytes (the socket chardev fails the
 * write and the UART discards it; the guest never blocks). Rejected:
 * `-chardev file` (unbounded; QEMU cannot rotate it and a rename behind its
 * back keeps it writing the old inode), and `ringbuf` read through QMP
 * `ringbuf-read` (keeps the last bytes while no daemon runs, but has to be
 * polled over QMP, which serves one client at a time and is shared with
 * stop and kill, and it overwrites output a slow poll has not read yet; the
 * socket instead pushes back on the guest while the daemon reads). The
 * guest starts stopped (-S) so the kernel's first lines are not dropped
 * before the daemon connects: the handle says `startedPaused`, and the
 * recorder resumes the guest (QMP `cont`) once QEMU has accepted it.
 */
export class QemuDriver implements VmmDriver {
  readonly name = 'qemu' as const;
  readonly features: DriverFeatures;
  readonly #binary: string;
  #accel: Accel;
  /** KVM is proved on the first start (a probe boot); until then this is pending. */
  #kvmProof: Promise<void> | undefined;
  readonly #onFallback: (reason: string) => void;
  #sandbox: Promise<SandboxSupport> | undefined;
  readonly #onSandboxUnavailable: (reason: string) => void;

  /**
   * `onFallback` hears (once) that KVM could not boot the guest and TCG is
   * used instead; `onSandboxUnavailable` hears (once) why QEMU runs without
   * `-sandbox`.
   */
  constructor(options: { binary: string; accel: Accel; onFallback?: (reason: string) => void; onSandboxUnavailable?: (reason: string) => void }) {
    this.#binary = options.binary;
    this.#accel = options.accel;
    this.#onFallback = options.onFallback ?? (() => undefined);
    this.#onSandboxUnavailable = options.onSandboxUnavailable ?? (() => undefined);
    this.features = { requestShutdown: true, softwareEmulation: options.accel === 'tcg' };
  }

  /** Whether this QEMU takes `-sandbox SANDBOX_OPTIONS`; probed on first use, then cached. */
  sandboxSupport(): Promise<SandboxSupport> {
    this.#sandbox ??= probeSandbox(this.#binary).then((support) => {
      if (!support.supported) this.#onSandboxUnavailable(support.reason);
      return support;
    });
    return this.#sandbox;
  }

  get accel(): Accel {
    return this.#accel;
  }

  /**
   * With KVM chosen, boots the guest kernel once in probe mode before the
   * first real VM: if KVM cannot get it to userspace quickly, every VM from
   * then on runs under TCG instead of hanging.
   */
  #proveKvm(spec: LaunchSpec): Promise<void> {
    if (this.#accel !== 'kvm') return Promise.resolve();
    this.#kvmProof ??= probeAccel({
      binary: this.#binary,
      accelArgs: accelArgs('kvm'),
      vmlinux: spec.kernel.vmlinux,
      initramfs: spec.kernel.initramfs,
      timeoutMs: KVM_PROBE_TIMEOUT_MS,
    }).then((ok) => {
      if (!ok) {
        this.#accel = 'tcg';
        this.features.softwareEmulation = true;
        this.#onFallback(`KVM did not boot the guest kernel within ${KVM_PROBE_TIMEOUT_MS / 1000}s; using TCG emulation`);
      }
    });
    return this.#kvmProof;
  }

  /**
   * QEMU's argv for a VM. Every value placed in a comma-separated option
   * string goes through qemuOptionValue (paths may contain commas);
   * `-kernel`, `-initrd` and `-append` take theirs whole. `paused` adds -S
   * (vCPUs stopped until QMP `cont`), as start() always does; without it the
   * guest runs at once and what it prints before a reader connects is lost
   * (the boot benchmark's raw-QEMU baseline runs it so).
   */
  args(spec: LaunchSpec, options: { sandbox: boolean; paused?: boolean }): string[] {
    const tsc = this.#accel === 'tcg' ? hostTscKhz() : undefined;
    const cmdline = [
      'console=ttyS0',
      'panic=-1',
      'quiet',
      'cryptomgr.notests',
      ...(tsc === undefined ? [] : [`tsc_early_khz=${tsc}`]),
      ...initramfsArgs(spec),
    ].join(' ');
    const accel = accelArgs(this.#accel);
    return [
      '-name',
      v(`banger-${spec.vmId}`),
      ...['-M', 'microvm,acpi=on', ...accel, '-m', String(spec.memoryMiB), '-smp', String(spec.vcpu)],
      ...['-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot'],
      ...(options.sandbox ? ['-sandbox', SANDBOX_OPTIONS] : []),
      ...(options.paused === true ? ['-S'] : []),
      ...[
        '-chardev',
        `socket,id=${CONSOLE_CHARDEV},path=${v(join(spec.runDir, VM_CONSOLE_SOCKET))},server=on,wait=off`,
        '-serial',
        `chardev:${CONSOLE_CHARDEV}`,
      ],
      ...['-qmp', `unix:${v(join(spec.runDir, QMP_SOCKET))},server=on,wait=off`],
      ...['-kernel', spec.kernel.vmlinux, '-initrd', spec.kernel.initramfs, '-append', cmdline],
      ...['-drive', `id=image,file=${v(spec.disks.image)},format=raw,if=none,readonly=on`, '-device', 'virtio-blk-device,drive=image'],
      ...['-drive', `id=upper,file=${v(spec.disks.upper)},format=raw,if=none`, '-device', 'virtio-blk-device,drive=upper'],
      ...['-drive', `id=work,file=${v(spec.disks.work)},format=raw,if=none`, '-device', 'virtio-blk-device,drive=work'],
      ...['-netdev', `tap,id=net0,ifname=${v(spec.net.tap)},script=no,downscript=no`, '-device', `virtio-net-device,netdev=net0,mac=${v(spec.net.mac)}`],
    ];
  }

  async start(spec: LaunchSpec, signal?: AbortSignal): Promise<VmmHandle> {
    await this.#proveKvm(spec);
    const sandbox = await this.sandboxSupport();
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const qmp = join(spec.runDir, QMP_SOCKET);
    const consoleSocket = join(spec.runDir, VM_CONSOLE_SOCKET);
    for (const socket of [qmp, consoleSocket]) rmSync(socket, { force: true });
    const logPath = join(spec.vmDir, VM_VMM_LOG);
    const log = openSync(logPath, 'w', 0o600);
    if (!sandbox.supported) writeSync(log, `banger: running qemu without -sandbox (seccomp): ${sandbox.reason}\n`);
    // Detached and in its own session: the VM outlives this request and the daemon.
    const child = spawn(this.#binary, this.args(spec, { sandbox: sandbox.supported, paused: true }), { detached: true, stdio: ['ignore', log, log] });
    closeSync(log);
    child.unref();
    let exited: number | null | undefined;
    child.on('exit', (code) => {
      exited = code;
    });
    child.on('error', () => {
      exited = -1;
    });
    const pid = child.pid;
    if (pid === undefined) throw new BangerError('ERR_VMM_FAILED', `cannot run ${this.#binary}`, { hint: 'apt-get install qemu-system-x86' });
    const handle: VmmHandle = {
      driver: 'qemu',
      pid,
      controlSocket: qmp,
      accel: this.#accel,
      console: { kind: 'socket', path: consoleSocket, startedPaused: true },
    };
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!existsSync(qmp) || !existsSync(consoleSocket)) {
      if (exited !== undefined || signal?.aborted === true || Date.now() > deadline) {
        await this.kill(handle);
        if (signal?.aborted === true) throw signal.reason instanceof Error ? signal.reason : new BangerError('ERR_CANCELLED', 'cancelled');
        const output = readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ');
        throw new BangerError('ERR_VMM_FAILED', `qemu ${exited === undefined ? 'did not start in time' : `exited (${exited ?? 'signal'})`}: ${output}`, {
          hint: `full output in ${logPath}`,
        });
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return handle;
  }

  async requestShutdown(handle: VmmHandle): Promise<void> {
    if (!this.isAlive(handle)) return;
    await qmpCommand(handle.controlSocket, 'system_powerdown');
  }

  async kill(handle: VmmHandle): Promise<void> {
    await killProcess(handle.pid, qemuProcessMarker(handle.controlSocket));
    rmSync(handle.controlSocket, { force: true });
    if (handle.console !== undefined) rmSync(handle.console.path, { force: true });
  }

  isAlive(handle: VmmHandle): boolean {
    return pidAlive(handle.pid) && processMatches(handle.pid, qemuProcessMarker(handle.controlSocket));
  }
}
