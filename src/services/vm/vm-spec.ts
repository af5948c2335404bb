import { DISK_SIZE_BYTES, INIT_MODE, MEMORY_MIB, NETWORK_MODE, VCPU } from '../../rpc/schemas.js';
import { boolean, mustPass } from '../../rpc/validation.js';
import type { VmSpec } from '../../store/vms-repo.js';

/**
 * Checks a whole VM spec, at create and after `vm set` merges its changes,
 * with the same rules the CLI and the RPC params use (src/rpc/schemas.ts):
 * the service does not trust that every caller came through those.
 */
export function validateSpec(spec: VmSpec): void {
  mustPass(VCPU.check(spec.vcpu), 'vcpu');
  mustPass(MEMORY_MIB.check(spec.memoryMiB), 'memory');
  mustPass(DISK_SIZE_BYTES.check(spec.diskSizeBytes), 'the work disk size');
  mustPass(INIT_MODE.check(spec.init), 'init');
  mustPass(boolean.check(spec.nat), 'nat');
  mustPass(NETWORK_MODE.check(spec.network), 'network');
}
