import { BangerError } from '../../rpc/errors.js';
import type { InitMode, VmSpec } from '../../store/vms-repo.js';
import { VM_NETWORKS } from '../network/host-network.js';

/** Checks a VM spec (at create, and after `vm set` changes it). */
export function validateSpec(spec: VmSpec): void {
  if (!Number.isInteger(spec.vcpu) || spec.vcpu < 1 || spec.vcpu > 64) throw new BangerError('ERR_INVALID_ARGUMENT', `vcpu must be 1-64, got ${spec.vcpu}`);
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 128)
    throw new BangerError('ERR_INVALID_ARGUMENT', `memory must be at least 128 MiB, got ${spec.memoryMiB}`);
  if (!Number.isInteger(spec.diskSizeBytes) || spec.diskSizeBytes < 1024 ** 3) {
    throw new BangerError('ERR_INVALID_ARGUMENT', 'the work disk must be at least 1G');
  }
  const modes: InitMode[] = ['minimal', 'systemd'];
  if (!modes.includes(spec.init)) throw new BangerError('ERR_INVALID_ARGUMENT', `init must be minimal or systemd, got ${spec.init}`);
  if (typeof spec.nat !== 'boolean') throw new BangerError('ERR_INVALID_ARGUMENT', 'nat must be true or false');
  if (!VM_NETWORKS.includes(spec.network)) throw new BangerError('ERR_INVALID_ARGUMENT', `network must be ${VM_NETWORKS.join(' or ')}, got ${spec.network}`);
}
