/**
 * What a VMM must do for banger. A driver starts a VM described by a
 * LaunchSpec as a process that outlives the request and the daemon (banger
 * owns its lifetime explicitly: stop, kill, reconcile), and controls it
 * through the handle it returns. Optional abilities are declared in
 * `features`, not guessed.
 */

export interface LaunchSpec {
  vmId: string;
  vcpu: number;
  memoryMiB: number;
  kernel: { vmlinux: string; initramfs: string };
  /** Read-only shared image, per-VM upper disk, per-VM work disk. */
  disks: { image: string; upper: string; work: string };
  net: { tap: string; mac: string; guestIp: string; prefix: number; gatewayIp: string };
  init: 'minimal' | 'systemd';
  /** Per-VM directory for logs (vmm.log; console.log is the daemon's, written from the console the handle names). */
  vmDir: string;
  /** Per-VM directory for control sockets (in the 0700 runtime dir). */
  runDir: string;
}

/** Momentary facts about a running VMM; persisted in the VM's handles.json, never in the store. */
export interface VmmHandle {
  driver: DriverName;
  pid: number;
  /** QMP socket (QEMU) or API socket (Firecracker). */
  controlSocket: string;
  /** How the VM is being run, e.g. "tcg" or "kvm". */
  accel: string;
  /**
   * Where the guest's serial console can be read (the daemon's
   * ConsoleRecorder does, into the VM's capped console.log). Absent in the
   * handles of VMs started by a banger that let the VMM write console.log
   * itself: those keep doing so until restarted.
   */
  console?: VmmConsole;
}

/**
 * The guest's serial console as a VMM hands it out. Nothing buffers it on
 * disk: output nobody reads is dropped by the VMM (socket) or held in the
 * pipe's 64 KiB and then dropped (fifo), so the host's disk use for a
 * console is bounded whether or not a daemon runs.
 */
export interface VmmConsole {
  /**
   * `socket`: a unix socket the VMM listens on, one reader at a time
   * (QEMU's socket chardev). `fifo`: a named pipe the VMM writes without
   * blocking (Firecracker's serial_out_path).
   */
  kind: 'socket' | 'fifo';
  path: string;
  /**
   * The VMM was started with the guest's vCPUs stopped so that not one byte
   * of the boot goes unread: whoever reads the console must resume the guest
   * once connected (QEMU: QMP `cont` on controlSocket, which is harmless on a
   * running guest, so resuming again after a daemon restart is fine).
   */
  startedPaused: boolean;
}

export type DriverName = 'qemu' | 'firecracker';

export interface DriverFeatures {
  /** Can ask the guest to power off (ACPI power button / Ctrl-Alt-Del). */
  requestShutdown: boolean;
  /** Runs without hardware virtualization (software emulation). */
  softwareEmulation: boolean;
}

export interface VmmDriver {
  readonly name: DriverName;
  readonly features: DriverFeatures;
  /**
   * Starts the VMM and returns once the process is up (not the guest). On
   * failure nothing is left running and the error says why (from the VMM's
   * own output where possible). When the handle's console says
   * `startedPaused`, the guest runs only once its console is read (see
   * ConsoleRecorder.attach).
   */
  start(spec: LaunchSpec, signal?: AbortSignal): Promise<VmmHandle>;
  /** Asks the guest to power off; resolves once asked (not once off). Best effort. */
  requestShutdown(handle: VmmHandle): Promise<void>;
  /** Kills the VMM process. MUST be idempotent: killing a dead VMM is fine. */
  kill(handle: VmmHandle): Promise<void>;
  /** True while this handle's process runs (checked against pid reuse). */
  isAlive(handle: VmmHandle): boolean;
}

/**
 * The kernel command line parameters of banger's initramfs contract (see
 * src/guest/initramfs-init.sh): which disk is what, the address, the init.
 * Drivers prepend their own console and machine parameters.
 */
export function initramfsArgs(spec: LaunchSpec): string[] {
  return [
    'banger.root=/dev/vda',
    'banger.upper=/dev/vdb',
    'banger.work=/dev/vdc',
    `banger.ip=${spec.net.guestIp}/${spec.net.prefix}`,
    `banger.gw=${spec.net.gatewayIp}`,
    `banger.init=${spec.init}`,
    `banger.vm=${spec.vmId}`,
  ];
}
