import type { BangerConfig } from '../config/schema.js';
import { findExecutable } from '../host/executables.js';
import { detectKvm, type KvmState } from '../host/kvm.js';
import { BangerError } from '../rpc/errors.js';
import type { DriverFeatures, LaunchSpec, VmmDriver, VmmHandle } from './driver.js';
import { processMatches } from '../host/process.js';
import { FirecrackerDriver } from './firecracker/firecracker-driver.js';
import { QemuDriver } from './qemu/qemu-driver.js';
import { processMarker } from './registry.js';

export interface DriverChoice {
  driver: VmmDriver;
  /** Why this driver and acceleration, for logs and doctor. */
  reason: string;
}

/**
 * Picks the VMM for `vmm = auto|qemu|firecracker`: auto takes Firecracker
 * when its binary is present and KVM is usable, else QEMU. KVM is used only
 * when the host can really run ordinary guests with it (a vendor module, not
 * PVM); otherwise QEMU runs them under TCG emulation, which is slower but
 * never hangs. Firecracker needs usable KVM and refuses without it.
 */
export function selectDriver(
  config: Pick<BangerConfig, 'vmm' | 'qemuBin' | 'firecrackerBin'>,
  env: NodeJS.ProcessEnv,
  kvm: KvmState = detectKvm(),
): DriverChoice {
  const kvmUsable = kvm.kind === 'usable';
  if (config.vmm !== 'qemu') {
    const firecracker = findExecutable(config.firecrackerBin ?? 'firecracker', env);
    if (firecracker !== undefined && kvmUsable) {
      return {
        driver: new FirecrackerDriver({ binary: firecracker, kvm: () => detectKvm() }),
        reason: `firecracker (${firecracker}), KVM usable (${kvm.module})`,
      };
    }
    if (config.vmm === 'firecracker') {
      throw new BangerError(
        firecracker === undefined ? 'ERR_HOST_TOOL_MISSING' : 'ERR_KVM_UNAVAILABLE',
        firecracker === undefined ? 'vmm = "firecracker" but no firecracker binary was found' : `vmm = "firecracker" but KVM is not usable here (${kvm.kind})`,
        { hint: 'install firecracker and use a KVM host, or set vmm = "auto" to fall back to QEMU' },
      );
    }
  }
  const binary = findExecutable(config.qemuBin ?? 'qemu-system-x86_64', env);
  if (binary === undefined) {
    throw new BangerError('ERR_HOST_TOOL_MISSING', 'qemu-system-x86_64 is not installed', { hint: 'apt-get install qemu-system-x86' });
  }
  const accel = kvmUsable ? 'kvm' : 'tcg';
  const why = kvm.kind === 'usable' ? `KVM usable (${kvm.module})` : `no usable KVM (${kvm.kind}): TCG emulation`;
  const firecrackerNote = config.vmm === 'auto' ? (kvmUsable ? '; no firecracker binary' : '; firecracker needs KVM') : '';
  return { driver: new QemuDriver({ binary, accel }), reason: `qemu (${binary}), ${why}${firecrackerNote}` };
}

/** Stands in when no VMM can be used: starting fails with the reason; existing VMs can still be killed. */
export class UnavailableDriver implements VmmDriver {
  readonly name = 'qemu' as const;
  readonly features: DriverFeatures = { requestShutdown: false, softwareEmulation: false };
  readonly #reason: BangerError;

  constructor(reason: BangerError) {
    this.#reason = reason;
  }

  start(_spec: LaunchSpec): Promise<VmmHandle> {
    return Promise.reject(this.#reason);
  }

  requestShutdown(): Promise<void> {
    return Promise.resolve();
  }

  kill(handle: VmmHandle): Promise<void> {
    if (processMatches(handle.pid, processMarker(handle))) process.kill(handle.pid, 'SIGKILL');
    return Promise.resolve();
  }

  isAlive(handle: VmmHandle): boolean {
    return processMatches(handle.pid, processMarker(handle));
  }
}
