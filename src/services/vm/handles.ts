import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VM_HANDLES } from '../../config/filenames.js';
import type { VmmHandle } from '../../vmm/driver.js';

/**
 * What is momentarily true about a running VM: its VMM process and tap. Kept
 * in memory and mirrored to the VM's handles.json so a restarted daemon can
 * find (and keep, or clean up after) VMs that outlived it. Never in the store.
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

  set(vmId: string, vmDir: string, handles: VmHandles): void {
    this.#handles.set(vmId, handles);
    writeFileSync(join(vmDir, VM_HANDLES), JSON.stringify(handles, null, 2) + '\n', { mode: 0o600 });
  }

  clear(vmId: string, vmDir: string): void {
    this.#handles.delete(vmId);
    rmSync(join(vmDir, VM_HANDLES), { force: true });
  }

  /** Reads a VM's handles.json (at startup); undefined when absent or unreadable. */
  load(vmId: string, vmDir: string): VmHandles | undefined {
    const path = join(vmDir, VM_HANDLES);
    if (!existsSync(path)) return undefined;
    try {
      const handles = JSON.parse(readFileSync(path, 'utf8')) as VmHandles;
      if (typeof handles.vmm.pid !== 'number' || typeof handles.tap !== 'string') return undefined;
      this.#handles.set(vmId, handles);
      return handles;
    } catch {
      return undefined;
    }
  }
}
