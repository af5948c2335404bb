import { existsSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { FileSyncEntry } from '../../config/schema.js';
import { forgetHosts, keepEntries, pinHostKey } from '../../guest/known-hosts.js';
import { ensureSshKey } from '../../guest/ssh-keys.js';
import { findExecutable, isStaticElf } from '../../host/executables.js';
import { BangerError } from '../../rpc/errors.js';
import type { VmRecord } from '../../store/vms-repo.js';
import type { OpContext } from '../op-context.js';
import { buildVmDisks, growDisk } from './vm-disks.js';

const MINIMAL_INIT = fileURLToPath(new URL('../../guest/minimal-init.sh', import.meta.url));

/** A VM's network identity, derived from its slot. */
export interface VmAddress {
  guestIp: string;
  gatewayIp: string;
}

/**
 * A VM's files on the host: its disks (built at create, grown at start), its
 * host key pinned in banger's known_hosts, and their removal. Knows nothing
 * of processes or records' states.
 */
export class VmProvisioner {
  readonly #deps: { knownHosts: string; sshKey: string; fileSync: readonly FileSyncEntry[]; env: NodeJS.ProcessEnv };

  constructor(deps: { knownHosts: string; sshKey: string; fileSync: readonly FileSyncEntry[]; env: NodeJS.ProcessEnv }) {
    this.#deps = deps;
  }

  /** Builds both disks in `vmDir` and pins the host key made for the VM: the first connection already verifies it. */
  async build(vm: VmRecord, vmDir: string, address: VmAddress, image: { sshServer: 'image' | 'banger' }, ctx: OpContext): Promise<void> {
    const key = await ensureSshKey(this.#deps.sshKey);
    const busybox = findExecutable('busybox', this.#deps.env);
    if (busybox === undefined || !isStaticElf(busybox)) {
      throw new BangerError('ERR_HOST_TOOL_MISSING', 'a static busybox is needed for the guest', { hint: 'apt-get install busybox-static' });
    }
    const { hostPublicKey } = await buildVmDisks(
      vmDir,
      { name: vm.name, guestIp: address.guestIp, gatewayIp: address.gatewayIp, busybox, minimalInit: MINIMAL_INIT, sshServer: image.sshServer },
      { authorizedKey: key.publicKey, fileSync: this.#deps.fileSync, sizeBytes: vm.spec.diskSizeBytes },
      ctx,
    );
    pinHostKey(this.#deps.knownHosts, hostNames(vm, address.guestIp), hostPublicKey);
  }

  /** Grows the work disk to the VM's configured size if `vm set --disk` raised it. */
  async growWorkDisk(vm: VmRecord, vmDir: string, ctx: OpContext): Promise<void> {
    const workDisk = join(vmDir, names.VM_WORK_DISK);
    if (existsSync(workDisk) && statSync(workDisk).size < vm.spec.diskSizeBytes) {
      ctx.progress('disks', `growing the work disk to ${vm.spec.diskSizeBytes / 1024 ** 3}G`);
      await growDisk(workDisk, vm.spec.diskSizeBytes, ctx);
    }
  }

  /**
   * Drops the pinned host keys of VMs that no longer exist (a crash can lose
   * a VM's record after its key was pinned): an entry stays only when its
   * hosts are exactly some existing VM's. Returns how many were dropped.
   */
  pruneHostKeys(existing: readonly { name: string; guestIp: string }[]): number {
    const wanted = new Set(existing.map((vm) => hostNames(vm, vm.guestIp).join(',')));
    return keepEntries(this.#deps.knownHosts, (hosts) => wanted.has(hosts.join(',')));
  }

  /** Removes the VM's directory and forgets its host key. Idempotent. */
  remove(vm: Pick<VmRecord, 'name'>, vmDir: string, guestIp: string): void {
    rmSync(vmDir, { recursive: true, force: true });
    forgetHosts(this.#deps.knownHosts, hostNames(vm, guestIp));
  }
}

/** The names a VM's host key is pinned under: its address, its name and `<name>.vm`. */
export function hostNames(vm: { name: string }, guestIp: string): string[] {
  return [guestIp, vm.name, `${vm.name}.vm`];
}
