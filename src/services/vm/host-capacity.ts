import { availableParallelism, totalmem } from 'node:os';

import { BangerError } from '../../rpc/errors.js';
import type { VmSpec } from '../../store/vms-repo.js';

export interface HostCapacity {
  cpus: number;
  memoryBytes: number;
}

export function hostCapacity(): HostCapacity {
  return { cpus: availableParallelism(), memoryBytes: totalmem() };
}

/**
 * Refuses a VM the host cannot run before anything is created: more vCPUs
 * than the host has, or more memory than it has in all (a VMM told to map
 * more fails at boot with nothing useful on the console). Memory may still be
 * overcommitted across VMs; each one alone must fit.
 */
export function checkHostCapacity(spec: Pick<VmSpec, 'vcpu' | 'memoryMiB'>, host: HostCapacity = hostCapacity()): void {
  if (spec.vcpu > host.cpus) {
    throw new BangerError('ERR_HOST_CAPACITY', `${spec.vcpu} vCPUs asked for, but this host has ${host.cpus}`, {
      hint: `use --vcpu ${host.cpus} or fewer`,
    });
  }
  const hostMiB = Math.floor(host.memoryBytes / 1024 ** 2);
  if (spec.memoryMiB > hostMiB) {
    throw new BangerError('ERR_HOST_CAPACITY', `${spec.memoryMiB} MiB of memory asked for, but this host has ${hostMiB} MiB in all`, {
      hint: `use --memory ${Math.max(128, Math.floor(hostMiB / 2))}M or less`,
    });
  }
}
