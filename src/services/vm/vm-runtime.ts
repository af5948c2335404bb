import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';

import { VM_CONSOLE_LOG } from '../../config/filenames.js';

import { processArgv, processesHolding } from '../../host/process.js';
import { BangerError } from '../../rpc/errors.js';
import type { LaunchSpec, VmmDriver, VmmHandle } from '../../vmm/driver.js';
import type { DriverRegistry } from '../../vmm/registry.js';
import type { ConsoleRecorder } from './console-log.js';
import { HandleCache, type VmHandles } from './handles.js';

/** What the runtime needs of the console recorder. */
export type ConsolePort = Pick<ConsoleRecorder, 'attach' | 'detach'>;

/** Where a VM's momentary files live: handles.json and logs in `vmDir`, control sockets in `runDir`. */
export interface VmPlace {
  id: string;
  vmDir: string;
  runDir: string;
}

/** What startup (or a second look) found about a VM's VMM. */
export type Adoption = { alive: true; handles: VmHandles } | { alive: false; leftover: VmHandles | undefined };

/**
 * The momentary side of VMs: which VMM runs each one, driven through the
 * driver named in its handle. Knows processes and handles, not records or
 * steps. Liveness always comes from the OS (pid plus the control socket on
 * the command line); handles.json only says where to look, and when it is
 * missing or unreadable the VMM is found from the OS instead.
 */
export class VmRuntime {
  readonly #drivers: DriverRegistry;
  readonly #consoles: ConsolePort | undefined;
  readonly #handles = new HandleCache();

  /** `consoles` records each running VM's console (and resumes a guest its driver started paused until then). */
  constructor(drivers: DriverRegistry, consoles?: ConsolePort) {
    this.#drivers = drivers;
    this.#consoles = consoles;
  }

  #record(vm: VmPlace, vmm: VmmHandle): void {
    this.#consoles?.attach(vm.id, vmm, join(vm.vmDir, VM_CONSOLE_LOG));
  }

  /** The driver new VMs start with. */
  get starter(): VmmDriver {
    return this.#drivers.starter;
  }

  handles(vmId: string): VmHandles | undefined {
    return this.#handles.get(vmId);
  }

  driverFor(vmm: VmmHandle): VmmDriver {
    return this.#drivers.forHandle(vmm);
  }

  /** Whether the VM's VMM, as this daemon knows it, is running. */
  alive(vmId: string): boolean {
    const handles = this.#handles.get(vmId);
    return handles !== undefined && this.#drivers.isAlive(handles.vmm);
  }

  /**
   * Looks for the VM's VMM from scratch: the OS first (a VMM whose command
   * line names this VM's control socket), handles.json only for what the OS
   * cannot say (the tap, should the VMM hold none open). A live VMM is cached
   * (and handles.json rewritten when it was wrong); a dead one's leftover
   * handles are returned so its tap can be released.
   */
  adopt(vm: VmPlace): Adoption {
    const recorded = this.#handles.read(vm.vmDir);
    const found = this.#drivers.rediscover(vm.runDir);
    if (found === undefined) {
      if (recorded !== undefined && this.#drivers.isAlive(recorded.vmm)) {
        this.#handles.remember(vm.id, vm.vmDir, recorded, true);
        this.#record(vm, recorded.vmm);
        return { alive: true, handles: recorded };
      }
      return { alive: false, leftover: recorded };
    }
    // A VMM always holds its tap open; '' (tap unknown) only if /proc could not say.
    const tap = found.tap ?? recorded?.tap ?? '';
    const handles: VmHandles = { vmm: found.handle, tap };
    const fileWasRight = recorded?.vmm.pid === found.handle.pid && recorded.tap === tap;
    this.#handles.remember(vm.id, vm.vmDir, handles, fileWasRight);
    this.#record(vm, handles.vmm);
    return { alive: true, handles };
  }

  /**
   * Starts the VM's VMM with the starter driver and records its handles. A VM
   * whose disks some live process holds open (a VMM this daemon lost track
   * of, or anything else) is never started: two writers would corrupt them.
   */
  async launch(vm: VmPlace, spec: LaunchSpec, signal: AbortSignal): Promise<VmHandles> {
    const holders = processesHolding([spec.disks.upper, spec.disks.work]);
    if (holders.length > 0) {
      const who = holders.map((pid) => `${pid} (${basename(processArgv(pid)?.[0] ?? '?')})`).join(', ');
      throw new BangerError('ERR_IN_USE', `the disks of this VM are open in another process: ${who}`, {
        hint: 'a VMM banger lost track of may still run it: `banger vm kill <vm>` ends it; otherwise stop that process',
      });
    }
    const vmm = await this.#drivers.starter.start(spec, signal);
    const handles: VmHandles = { vmm, tap: spec.net.tap };
    try {
      this.#handles.set(vm.id, vm.vmDir, handles);
    } catch (error) {
      await this.#drivers.forHandle(vmm).kill(vmm);
      throw error;
    }
    this.#record(vm, vmm);
    return handles;
  }

  /**
   * Kills the VM's VMM wherever it is known from (cache, handles.json, or the
   * OS) and forgets its handles and runtime dir (sockets). Returns the handles it had, so the caller can
   * release the tap. Idempotent.
   */
  async kill(vm: VmPlace): Promise<VmHandles | undefined> {
    let handles = this.#handles.get(vm.id) ?? this.#handles.read(vm.vmDir);
    const found = this.#drivers.rediscover(vm.runDir);
    if (found !== undefined && handles?.vmm.pid !== found.handle.pid) {
      // The recorded handle is stale or missing but the VM's VMM runs: that is the one to end.
      if (handles !== undefined) await this.#drivers.forHandle(handles.vmm).kill(handles.vmm);
      handles = { vmm: found.handle, tap: found.tap ?? handles?.tap ?? '' };
    }
    if (handles !== undefined) await this.#drivers.forHandle(handles.vmm).kill(handles.vmm);
    this.#consoles?.detach(vm.id);
    this.#handles.clear(vm.id, vm.vmDir);
    rmSync(vm.runDir, { recursive: true, force: true });
    return handles;
  }

  /** Forgets a VM's handles (its VMM is known to be gone). */
  forget(vm: VmPlace): void {
    this.#consoles?.detach(vm.id);
    this.#handles.clear(vm.id, vm.vmDir);
    rmSync(vm.runDir, { recursive: true, force: true });
  }
}
