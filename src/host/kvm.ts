import { accessSync, constants, existsSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the host's /dev/kvm can do for banger's guests, from static facts
 * (device node, access, loaded KVM vendor modules). PVM ("pagetable-based
 * virtual machine") registers /dev/kvm but only runs guest kernels built for
 * it: an ordinary kernel hangs in its decompressor. So PVM counts as
 * present-but-unusable and VMs fall back to TCG emulation.
 */
export type KvmState = { kind: 'usable'; module: string } | { kind: 'pvm' } | { kind: 'no-access' } | { kind: 'unknown-module' } | { kind: 'absent' };

export interface KvmHost {
  devKvm: string;
  sysModuleDir: string;
}

export const DEFAULT_KVM_HOST: KvmHost = { devKvm: '/dev/kvm', sysModuleDir: '/sys/module' };

export function detectKvm(host: KvmHost = DEFAULT_KVM_HOST): KvmState {
  if (!existsSync(host.devKvm)) return { kind: 'absent' };
  for (const module of ['kvm_intel', 'kvm_amd']) {
    if (existsSync(join(host.sysModuleDir, module))) {
      try {
        accessSync(host.devKvm, constants.R_OK | constants.W_OK);
      } catch {
        return { kind: 'no-access' };
      }
      return { kind: 'usable', module };
    }
  }
  if (existsSync(join(host.sysModuleDir, 'kvm_pvm'))) return { kind: 'pvm' };
  return { kind: 'unknown-module' };
}
