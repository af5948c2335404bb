import { join } from 'node:path';

import { VM_CONSOLE_LOG } from '../config/filenames.js';
import type { VmDefaultsInfo, VmInfo, VmStatsSample } from '../rpc/methods.js';
import { LOG_LINES_DEFAULT } from '../rpc/schemas.js';
import { readConsoleTail } from '../services/vm/console-log.js';
import type { VmService, VmView } from '../services/vm/vm-service.js';
import type { DaemonHandlers } from './rpc-server.js';

export type VmHandlers = Pick<
  DaemonHandlers,
  'vmCreate' | 'vmDefaults' | 'vmList' | 'vmShow' | 'vmStart' | 'vmStop' | 'vmRestart' | 'vmKill' | 'vmDelete' | 'vmSet' | 'vmLogs' | 'vmSshTarget'
>;

/** `stats`: the VM's latest sample (see StatsService); shown only while it runs. */
export function vmInfo(view: VmView, stats: VmStatsSample | null = null): VmInfo {
  const { vm } = view;
  const state = vm.state === 'running' && !view.alive ? 'stopped' : vm.state;
  return {
    id: vm.id,
    name: vm.name,
    state,
    image: view.image?.name ?? '(deleted)',
    ip: view.guestIp,
    spec: vm.spec,
    lastError: vm.lastError,
    createdAt: vm.createdAt,
    accel: view.accel,
    pid: view.pid,
    workspace: vm.workspace,
    stats: state === 'running' ? stats : null,
  };
}

/** VM methods; params arrive checked against their schemas (see withCheckedParams). */
export function createVmHandlers(
  vms: VmService,
  vmDefaults: () => VmDefaultsInfo,
  latestStats: (vmId: string) => VmStatsSample | null = () => null,
): VmHandlers {
  const infoOf = (view: VmView): VmInfo => vmInfo(view, latestStats(view.vm.id));
  const byRef = async (ref: string, op: (ref: string) => Promise<unknown>): Promise<VmInfo> => {
    await op(ref);
    return infoOf(await vms.show(ref));
  };
  return {
    vmCreate: async (params, ctx) => {
      const defaults = vmDefaults();
      const vm = await vms.create(
        {
          name: params.name,
          image: params.image,
          noStart: params.noStart === true,
          spec: {
            vcpu: params.vcpu ?? defaults.vcpu,
            memoryMiB: params.memoryMiB ?? defaults.memoryMiB,
            diskSizeBytes: params.diskSizeBytes ?? defaults.diskSizeBytes,
            init: params.init ?? defaults.init,
            nat: params.nat ?? defaults.nat,
            network: params.network ?? defaults.network,
          },
        },
        ctx,
      );
      return infoOf(await vms.show(vm.id));
    },
    vmDefaults: () => Promise.resolve(vmDefaults()),
    vmList: async () => ({ vms: (await vms.list()).map(infoOf) }),
    vmShow: async (params) => infoOf(await vms.show(params.ref)),
    vmStart: (params, ctx) => byRef(params.ref, (ref) => vms.start(ref, ctx)),
    vmStop: (params, ctx) => byRef(params.ref, (ref) => vms.stop(ref, ctx)),
    vmRestart: (params, ctx) => byRef(params.ref, (ref) => vms.restart(ref, ctx)),
    vmKill: (params, ctx) => byRef(params.ref, (ref) => vms.kill(ref, ctx)),
    vmDelete: async (params, ctx) => {
      const view = await vms.show(params.ref);
      await vms.delete(view.vm.id, ctx);
      return { ...infoOf(view), state: 'stopped', pid: null, accel: null, stats: null };
    },
    vmSet: async (params) => {
      const { ref, ...changes } = params;
      const vm = await vms.set(ref, changes);
      return infoOf(await vms.show(vm.id));
    },
    vmLogs: async ({ ref, lines = LOG_LINES_DEFAULT }) => {
      const view = await vms.show(ref);
      return { lines: readConsoleTail(join(vms.vmDir(view.vm), VM_CONSOLE_LOG), lines) };
    },
    vmSshTarget: async (params) => {
      const target = await vms.sshTarget(params.ref);
      return { name: target.vm.name, host: target.host, user: 'root', keyPath: target.keyPath, knownHosts: target.knownHosts };
    },
  };
}
