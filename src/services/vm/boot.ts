import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import { BangerError } from '../../rpc/errors.js';
import type { VmRecord } from '../../store/vms-repo.js';
import { slotNetwork } from '../network/slot.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import type { OpContext } from '../op-context.js';
import { bootFailure } from './boot-failure.js';
import { checkHostCapacity } from './host-capacity.js';
import { runSteps } from './steps.js';
import type { VmServiceDeps } from './vm-service.js';
import type { VmPlace } from './vm-runtime.js';

const SSH_READY_TIMEOUT_MS = 180_000;

/**
 * Boots a VM: tap, VMM, then wait until SSH answers with a trusted host key.
 * Caller holds the VM lock. On failure everything this started is undone;
 * an existing VM is left stopped with the error recorded.
 */
export async function bootVm(deps: VmServiceDeps, vm: VmRecord, place: VmPlace, ctx: OpContext, options: { keepOnFailure: boolean }): Promise<void> {
  checkHostCapacity(vm.spec, deps.host);
  const image = deps.images.byId(vm.imageId);
  const kernel = image === undefined ? undefined : deps.kernels.byId(image.kernelId);
  if (image === undefined || kernel === undefined) throw new BangerError('ERR_NOT_FOUND', `VM ${vm.name}'s image or kernel no longer exists`);
  const kernelFiles = deps.kernels.files(deps.kernels.ensureCurrentInitramfs(kernel, ctx));
  const net = slotNetwork(deps.networkConfig, vm.slot);
  const runtime = deps.runtime;
  const logsHint = options.keepOnFailure ? `see \`banger vm logs ${vm.name}\` for the guest console` : undefined;
  let tap: string | undefined;
  const requireTap = (): string => {
    if (tap === undefined) throw new Error('network step did not run');
    return tap;
  };

  deps.vms.setState(vm.id, 'starting');
  try {
    await runSteps(
      [
        { stage: 'disks', detail: 'checking disks', run: () => deps.provisioner.growWorkDisk(vm, place.vmDir, ctx) },
        {
          stage: 'network',
          detail: `network: ${net.guestIp} on ${deps.network.bridge} (${vm.spec.network}${vm.spec.nat ? ', NAT' : ''})`,
          run: async () => {
            tap = await deps.network.acquireTap();
            await deps.network.attach({ tap, guestIp: net.guestIp, mac: net.mac, nat: vm.spec.nat, network: vm.spec.network });
            failpoint(FAILPOINTS.startNetwork);
          },
          rollback: () => deps.network.detach(net.guestIp, tap),
        },
        {
          stage: 'boot',
          detail: `booting (${runtime.starter.name}, ${vm.spec.vcpu} vcpu, ${vm.spec.memoryMiB} MiB, ${vm.spec.init} init)`,
          run: async () => {
            const { vmm } = await runtime.launch(
              place,
              {
                vmId: vm.id,
                vcpu: vm.spec.vcpu,
                memoryMiB: vm.spec.memoryMiB,
                kernel: { vmlinux: kernelFiles.vmlinux, initramfs: kernelFiles.initramfs },
                disks: { image: image.spec.rootfs, upper: join(place.vmDir, names.VM_UPPER_DISK), work: join(place.vmDir, names.VM_WORK_DISK) },
                net: { tap: requireTap(), mac: net.mac, guestIp: net.guestIp, prefix: net.prefix, gatewayIp: net.gatewayIp },
                init: vm.spec.init,
                vmDir: place.vmDir,
                runDir: place.runDir,
              },
              ctx.signal,
            );
            ctx.log.info({ vm: vm.name, pid: vmm.pid, accel: vmm.accel }, 'vmm started');
            failpoint(FAILPOINTS.startBoot);
          },
          rollback: async () => {
            await runtime.kill(place);
          },
        },
        {
          stage: 'ssh',
          detail: `waiting for SSH on ${net.guestIp}`,
          run: async () => {
            failpoint(FAILPOINTS.startSsh);
            await deps.guests.waitReady(vm.id, net.guestIp, {
              deadlineMs: SSH_READY_TIMEOUT_MS,
              signal: ctx.signal,
              stillBooting: () => (runtime.alive(vm.id) ? undefined : bootFailure(place.vmDir, logsHint)),
              hint: logsHint,
            });
          },
        },
      ],
      ctx,
    );
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (options.keepOnFailure) deps.vms.setState(vm.id, 'stopped', message);
    throw error;
  }
  deps.vms.setState(vm.id, 'running');
  deps.onRunningChanged?.();
}
