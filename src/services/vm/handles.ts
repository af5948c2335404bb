import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VM_HANDLES } from '../../config/filenames.js';
import type { VmmConsole, VmmHandle } from '../../vmm/driver.js';

/**
 * What is momentarily true about a running VM: its VMM process and tap. Kept
 * in memory and mirrored to the VM's handles.json so a restarted daemon can
 * find (and keep, or clean up after) VMs that outlived it. Never in the store.
 * The file is a hint, not the truth: the VM runtime checks it against the OS
 * and rediscovers a VMM it lost (see VmRuntime.adopt).
 */
export interface VmHandles {
  vmm: VmmHandle;
  tap: string;
}

export class HandleCache {
  readonly #handles = new Map<string, VmHandles>();

  get(vmId: string): VmHandles | undefined {
    return this.#handles.get(vmId);
  }

  /** Caches the handles and writes handles.json atomically (temp file + rename): a crash leaves the old file or the new, never half of one. */
  set(vmId: string, vmDir: string, handles: VmHandles): void {
    this.#handles.set(vmId, handles);
    const path = join(vmDir, VM_HANDLES);
    const temp = `${path}.tmp`;
    writeFileSync(temp, JSON.stringify(handles, null, 2) + '\n', { mode: 0o600, flush: true });
    renameSync(temp, path);
  }

  clear(vmId: string, vmDir: string): void {
    this.#handles.delete(vmId);
    rmSync(join(vmDir, VM_HANDLES), { force: true });
    rmSync(join(vmDir, `${VM_HANDLES}.tmp`), { force: true });
  }

  /** Reads a VM's handles.json without caching it; undefined when absent or unreadable. */
  read(vmDir: string): VmHandles | undefined {
    const path = join(vmDir, VM_HANDLES);
    if (!existsSync(path)) return undefined;
    try {
      const handles = JSON.parse(readFileSync(path, 'utf8')) as { vmm?: Partial<Record<keyof VmmHandle, unknown>>; tap?: unknown } | null;
      const vmm = handles?.vmm;
      if (
        vmm === undefined ||
        typeof vmm.pid !== 'number' ||
        typeof vmm.controlSocket !== 'string' ||
        (vmm.driver !== 'qemu' && vmm.driver !== 'firecracker') ||
        typeof handles?.tap !== 'string'
      ) {
        return undefined;
      }
      const driver: VmmHandle['driver'] = vmm.driver;
      const handle: VmmHandle = { driver, pid: vmm.pid, controlSocket: vmm.controlSocket, accel: typeof vmm.accel === 'string' ? vmm.accel : 'unknown' };
      const console = consoleOf(vmm.console);
      if (console !== undefined) handle.console = console;
      return { vmm: handle, tap: handles.tap };
    } catch {
      return undefined;
    }
  }

  /** Caches handles found at startup without rewriting the file unless it was wrong. */
  remember(vmId: string, vmDir: string, handles: VmHandles, fileWasRight: boolean): void {
    if (fileWasRight) this.#handles.set(vmId, handles);
    else this.set(vmId, vmDir, handles);
  }
}

function consoleOf(value: unknown): VmmConsole | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { kind, path, startedPaused } = value as Record<string, unknown>;
  if ((kind !== 'socket' && kind !== 'fifo') || typeof path !== 'string') return undefined;
  return { kind, path, startedPaused: startedPaused === true };
}
