import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VM_CONSOLE_FIFO, VM_VMM_LOG } from '../../config/filenames.js';
import { runCommand } from '../../host/command.js';
import type { KvmState } from '../../host/kvm.js';
import { BangerError } from '../../rpc/errors.js';
import { acceptsConnections } from '../../host/unix-socket.js';
import { initramfsArgs, type DriverFeatures, type LaunchSpec, type VmmDriver, type VmmHandle } from '../driver.js';
import { killProcess, pidAlive, processMatches } from '../../host/process.js';
import { FirecrackerApi } from './api-client.js';

export const API_SOCKET = 'firecracker.sock';
export const VSOCK_SOCKET = 'vsock.sock';
export const FIRECRACKER_LOG = 'firecracker.log';
export const METRICS_FILE = 'metrics.json';

const SOCKET_TIMEOUT_MS = 5_000;
/** The oldest Firecracker banger drives: see the class comment. */
export const MIN_FIRECRACKER_VERSION: readonly [number, number] = [1, 16];

/**
 * Firecracker: configure the microVM through the API socket, then
 * InstanceStart. The process is started through `sh -c 'umask 077; exec …'`
 * so its API and vsock sockets are 0600 from birth, detached so banger (not a
 * request) owns its lifetime. It needs usable KVM and refuses to start
 * without it.
 *
 * Devices attach in the order configured, so the guest sees the image as
 * /dev/vda, the upper disk as vdb and the work disk as vdc, which is what
 * banger's initramfs expects. Firecracker >= 1.8 describes them through ACPI
 * (as QEMU microvm does), which Debian's cloud kernel reads; older releases
 * put them on the command line, which needs CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES.
 *
 * The guest's serial console goes to a named pipe in the runtime dir
 * (console.fifo, PUT /serial), which the daemon's ConsoleRecorder drains into
 * a capped, rotated console.log; Firecracker's own stdout and stderr go to
 * vmm.log. Firecracker opens the pipe read-write and non-blocking, so the
 * guest never waits on it: while no daemon reads, the pipe holds the last
 * 64 KiB the kernel buffered (the boot's first lines, read on attach) and
 * Firecracker drops the rest. That is the whole bound, with no process of
 * banger's needed while the daemon is away. Needs Firecracker 1.16 or newer:
 * /serial came in 1.14, opening a pipe without a reader in 1.15 (ENXIO
 * before), and 1.16 rate-limits the error line Firecracker logs for each byte
 * it drops (firecracker.log would otherwise grow by a line per byte).
 * The guest runs at once (InstanceStart) rather than paused until the
 * console is read: the pipe keeps what the boot prints until then.
 */
export class FirecrackerDriver implements VmmDriver {
  readonly name = 'firecracker' as const;
  readonly features: DriverFeatures = { requestShutdown: true, softwareEmulation: false };
  readonly #binary: string;
  readonly #kvm: () => KvmState;

  constructor(options: { binary: string; kvm: () => KvmState }) {
    this.#binary = options.binary;
    this.#kvm = options.kvm;
  }

  bootArgs(spec: LaunchSpec): string {
    return ['console=ttyS0', 'reboot=k', 'panic=1', 'pci=off', 'quiet', 'cryptomgr.notests', ...initramfsArgs(spec)].join(' ');
  }

  /** Configures a freshly started Firecracker through its API and boots the guest. */
  async configureAndBoot(api: FirecrackerApi, spec: LaunchSpec, consoleFifo: string): Promise<void> {
    const { firecracker_version: version } = await api.version();
    if (!versionAtLeast(version, MIN_FIRECRACKER_VERSION)) {
      throw new BangerError('ERR_VMM_FAILED', `firecracker ${version} is too old: banger needs ${MIN_FIRECRACKER_VERSION.join('.')} or newer`, {
        hint: 'install a newer Firecracker release, or set vmm = "qemu" in config.toml',
      });
    }
    const logPath = join(spec.vmDir, FIRECRACKER_LOG);
    const metricsPath = join(spec.vmDir, METRICS_FILE);
    // Firecracker opens these; they must exist.
    for (const path of [logPath, metricsPath]) if (!existsSync(path)) writeFileSync(path, '', { mode: 0o600 });
    await api.putLogger({ log_path: logPath, level: 'Warning', show_level: true });
    await api.putMetrics({ metrics_path: metricsPath });
    await api.putMachineConfig({ vcpu_count: spec.vcpu, mem_size_mib: spec.memoryMiB, smt: false });
    await api.putBootSource({ kernel_image_path: spec.kernel.vmlinux, initrd_path: spec.kernel.initramfs, boot_args: this.bootArgs(spec) });
    await api.putDrive({ drive_id: 'image', path_on_host: spec.disks.image, is_root_device: false, is_read_only: true });
    await api.putDrive({ drive_id: 'upper', path_on_host: spec.disks.upper, is_root_device: false, is_read_only: false });
    await api.putDrive({ drive_id: 'work', path_on_host: spec.disks.work, is_root_device: false, is_read_only: false });
    await api.putNetworkInterface({ iface_id: 'eth0', host_dev_name: spec.net.tap, guest_mac: spec.net.mac });
    await api.putVsock({ guest_cid: vsockCid(spec.vmId), uds_path: join(spec.runDir, VSOCK_SOCKET) });
    await api.putSerial({ serial_out_path: consoleFifo });
    await api.action('InstanceStart');
  }

  async start(spec: LaunchSpec, signal?: AbortSignal): Promise<VmmHandle> {
    const kvm = this.#kvm();
    if (kvm.kind !== 'usable') {
      throw new BangerError('ERR_KVM_UNAVAILABLE', `Firecracker needs usable KVM; this host's /dev/kvm is ${kvm.kind}`, {
        hint: 'set vmm = "qemu" (or "auto") in config.toml to run VMs under QEMU instead',
      });
    }
    mkdirSync(spec.runDir, { recursive: true, mode: 0o700 });
    const apiSocket = join(spec.runDir, API_SOCKET);
    rmSync(apiSocket, { force: true });
    rmSync(join(spec.runDir, VSOCK_SOCKET), { force: true });
    // A fresh pipe per start: Firecracker would create a regular file (unbounded) if it were missing.
    const consoleFifo = join(spec.runDir, VM_CONSOLE_FIFO);
    rmSync(consoleFifo, { force: true });
    await runCommand('mkfifo', ['-m', '600', consoleFifo]);
    const vmmLogPath = join(spec.vmDir, VM_VMM_LOG);
    const vmmLog = openSync(vmmLogPath, 'w', 0o600);
    const child = spawn('sh', ['-c', 'umask 077 && exec "$0" "$@"', this.#binary, '--api-sock', apiSocket, '--id', spec.vmId], {
      detached: true,
      stdio: ['ignore', vmmLog, vmmLog],
    });
    closeSync(vmmLog);
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new BangerError('ERR_VMM_FAILED', `cannot run ${this.#binary}`);
    const handle: VmmHandle = {
      driver: 'firecracker',
      pid,
      controlSocket: apiSocket,
      accel: 'kvm',
      console: { kind: 'fifo', path: consoleFifo, startedPaused: false },
    };
    try {
      const deadline = Date.now() + SOCKET_TIMEOUT_MS;
      // The socket file appears at bind(), a moment before listen(): wait until it accepts, not until it exists.
      while (!(await acceptsConnections(apiSocket))) {
        signal?.throwIfAborted();
        if (!pidAlive(pid) || Date.now() > deadline) {
          throw new BangerError('ERR_VMM_FAILED', `firecracker ${pidAlive(pid) ? 'did not open its API socket in time' : 'exited at once'}`, {
            hint: `see ${vmmLogPath}`,
          });
        }
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await this.configureAndBoot(new FirecrackerApi(apiSocket), spec, consoleFifo);
      return handle;
    } catch (error) {
      await this.kill(handle);
      throw error;
    }
  }

  async requestShutdown(handle: VmmHandle): Promise<void> {
    if (!this.isAlive(handle)) return;
    await new FirecrackerApi(handle.controlSocket).action('SendCtrlAltDel');
  }

  async kill(handle: VmmHandle): Promise<void> {
    await killProcess(handle.pid, handle.controlSocket);
    rmSync(handle.controlSocket, { force: true });
    if (handle.console !== undefined) rmSync(handle.console.path, { force: true });
  }

  isAlive(handle: VmmHandle): boolean {
    return processMatches(handle.pid, handle.controlSocket);
  }
}

/** Whether a Firecracker version string (`1.16.0`, `1.17.0-dev`) is at least `major.minor`. */
export function versionAtLeast(version: string, [major, minor]: readonly [number, number]): boolean {
  const match = /^v?(\d+)\.(\d+)/.exec(version);
  if (match === null) return false;
  const [have, haveMinor] = [Number(match[1]), Number(match[2])];
  return have > major || (have === major && haveMinor >= minor);
}

/** A vsock context id per VM: 3 and up (0-2 are reserved), stable for the VM. */
export function vsockCid(vmId: string): number {
  return 3 + (Number.parseInt(vmId.slice(0, 7), 16) % 0x7ffffff0);
}
