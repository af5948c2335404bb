import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { VM_CONSOLE_FIFO, VM_CONSOLE_SOCKET } from '../config/filenames.js';

import { detectKvm } from '../host/kvm.js';
import { findProcess, openTapInterfaces, processArgv } from '../host/process.js';
import type { DriverName, VmmConsole, VmmDriver, VmmHandle } from './driver.js';
import { API_SOCKET, FirecrackerDriver } from './firecracker/firecracker-driver.js';
import { QemuDriver, QMP_SOCKET, qemuProcessMarker } from './qemu/qemu-driver.js';
import { qemuOptionValue } from './qemu/qemu-options.js';

/** A VMM found running from the OS alone: its handle and the tap it holds open. */
export interface FoundVmm {
  handle: VmmHandle;
  tap: string | undefined;
}

/**
 * The drivers a daemon can control. New VMs start with `starter` (chosen from
 * config and host at daemon start); every other call goes to the driver named
 * in the VM's handle, so a VM is always driven by the VMM that runs it even
 * after `vmm` changed (config edited, Firecracker installed or removed).
 * Controlling an existing VM (isAlive, kill, power button) needs no binary,
 * only its pid and control socket, so a driver of the other kind is always
 * available for that.
 */
export class DriverRegistry {
  readonly starter: VmmDriver;
  readonly #controllers: Record<DriverName, VmmDriver>;

  /**
   * `starter` may be a stand-in that refuses to start (no usable VMM); it is
   * then never used for control. `controllers` replaces the built-in control
   * of a kind (tests).
   */
  constructor(starter: VmmDriver, options: { startable?: boolean; controllers?: Partial<Record<DriverName, VmmDriver>> } = {}) {
    this.starter = starter;
    const own = (name: DriverName): VmmDriver | undefined =>
      options.controllers?.[name] ?? (options.startable !== false && starter.name === name ? starter : undefined);
    this.#controllers = {
      qemu: own('qemu') ?? new QemuDriver({ binary: 'qemu-system-x86_64', accel: 'tcg' }),
      firecracker: own('firecracker') ?? new FirecrackerDriver({ binary: 'firecracker', kvm: detectKvm }),
    };
  }

  /** The driver that controls the VMM behind `handle`. */
  forHandle(handle: Pick<VmmHandle, 'driver'>): VmmDriver {
    return this.#controllers[handle.driver];
  }

  isAlive(handle: VmmHandle): boolean {
    return this.forHandle(handle).isAlive(handle);
  }

  /**
   * Finds a VM's VMM from the OS (its control socket, which lives in the VM's
   * runtime dir, is on its command line), whatever banger recorded: the
   * fallback when handles.json is missing or unreadable, and the check that
   * keeps a second VMM off the same disks.
   */
  rediscover(runDir: string): FoundVmm | undefined {
    const candidates = (['qemu', 'firecracker'] as const).map((driver) => {
      const controlSocket = join(runDir, driver === 'qemu' ? QMP_SOCKET : API_SOCKET);
      return { driver, controlSocket, marker: processMarker({ driver, controlSocket }) };
    });
    const found = findProcess(candidates.map((c) => c.marker));
    const candidate = candidates.find((c) => c.marker === found?.marker);
    if (found === undefined || candidate === undefined) return undefined;
    const { driver, controlSocket } = candidate;
    const argv = processArgv(found.pid) ?? [];
    const handle: VmmHandle = { driver, pid: found.pid, controlSocket, accel: driver === 'qemu' ? qemuAccel(argv) : 'kvm' };
    const console = consoleOf(driver, runDir, argv);
    if (console !== undefined) handle.console = console;
    return { handle, tap: openTapInterfaces(found.pid)[0] };
  }
}

/** How a VMM's command line names its control socket: QEMU escapes commas in it, Firecracker takes it whole. */
export function processMarker(handle: Pick<VmmHandle, 'driver' | 'controlSocket'>): string {
  return handle.driver === 'qemu' ? qemuProcessMarker(handle.controlSocket) : handle.controlSocket;
}

/** Where a rediscovered VMM's console is read, from its command line (QEMU) or its runtime dir (Firecracker). */
function consoleOf(driver: DriverName, runDir: string, argv: readonly string[]): VmmConsole | undefined {
  if (driver === 'qemu') {
    const path = join(runDir, VM_CONSOLE_SOCKET);
    return argv.some((arg) => arg.includes(qemuOptionValue(path))) ? { kind: 'socket', path, startedPaused: argv.includes('-S') } : undefined;
  }
  const path = join(runDir, VM_CONSOLE_FIFO);
  return existsSync(path) ? { kind: 'fifo', path, startedPaused: false } : undefined;
}

/** The accelerator on a QEMU command line (`-accel kvm` or `-accel tcg,...`). */
function qemuAccel(argv: readonly string[]): string {
  const value = argv[argv.indexOf('-accel') + 1] ?? '';
  return value.startsWith('kvm') ? 'kvm' : 'tcg';
}
