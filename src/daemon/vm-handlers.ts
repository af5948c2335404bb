import { join } from 'node:path';

import { VM_CONSOLE_LOG } from '../config/filenames.js';
import { BangerError } from '../rpc/errors.js';
import type { VmInfo } from '../rpc/methods.js';
import { readConsoleTail } from '../services/vm/console-log.js';
import type { VmService, VmView } from '../services/vm/vm-service.js';
import { VM_NETWORKS } from '../services/network/host-network.js';
import { optionalBoolean, optionalChoice, optionalInteger, optionalString, requireInteger, requireString } from './params.js';
import type { DaemonHandlers } from './rpc-server.js';

export type VmHandlers = Pick<
  DaemonHandlers,
  'vmCreate' | 'vmList' | 'vmShow' | 'vmStart' | 'vmStop' | 'vmRestart' | 'vmKill' | 'vmDelete' | 'vmSet' | 'vmLogs' | 'vmSshTarget'
>;

export function vmInfo(view: VmView): VmInfo {
  const { vm } = view;
  return {
    id: vm.id,
    name: vm.name,
    state: vm.state === 'running' && !view.alive ? 'stopped' : vm.state,
    image: view.image?.name ?? '(deleted)',
    ip: view.guestIp,
    spec: vm.spec,
    lastError: vm.lastError,
    createdAt: vm.createdAt,
    accel: view.accel,
    pid: view.pid,
    workspace: vm.workspace,
  };
}

export function createVmHandlers(vms: VmService): VmHandlers {
  const byRef = async (params: unknown, op: (ref: string) => Promise<unknown>): Promise<VmInfo> => {
    const ref = requireString(params, 'ref');
    await op(ref);
    return vmInfo(await vms.show(ref));
  };
  return {
    vmCreate: async (params, ctx) => {
      const init = optionalString(params, 'init') ?? 'minimal';
      if (init !== 'minimal' && init !== 'systemd') throw new BangerError('ERR_INVALID_ARGUMENT', `init must be minimal or systemd, got "${init}"`);
      const vm = await vms.create(
        {
          name: optionalString(params, 'name'),
          image: optionalString(params, 'image'),
          noStart: (params as { noStart?: unknown }).noStart === true,
          spec: {
            vcpu: requireInteger(params, 'vcpu'),
            memoryMiB: requireInteger(params, 'memoryMiB'),
            diskSizeBytes: requireInteger(params, 'diskSizeBytes'),
            init,
            nat: optionalBoolean(params, 'nat') ?? false,
            network: optionalChoice(params, 'network', VM_NETWORKS) ?? 'isolated',
          },
        },
        ctx,
      );
      return vmInfo(await vms.show(vm.id));
    },
    vmList: async () => ({ vms: (await vms.list()).map(vmInfo) }),
    vmShow: async (params) => vmInfo(await vms.show(requireString(params, 'ref'))),
    vmStart: (params, ctx) => byRef(params, (ref) => vms.start(ref, ctx)),
    vmStop: (params, ctx) => byRef(params, (ref) => vms.stop(ref, ctx)),
    vmRestart: (params, ctx) => byRef(params, (ref) => vms.restart(ref, ctx)),
    vmKill: (params, ctx) => byRef(params, (ref) => vms.kill(ref, ctx)),
    vmDelete: async (params, ctx) => {
      const view = await vms.show(requireString(params, 'ref'));
      await vms.delete(view.vm.id, ctx);
      return { ...vmInfo(view), state: 'stopped', pid: null, accel: null };
    },
    vmSet: async (params) => {
      const changes: { vcpu?: number; memoryMiB?: number; diskSizeBytes?: number; nat?: boolean } = {};
      const nat = optionalBoolean(params, 'nat');
      if (nat !== undefined) changes.nat = nat;
      const vcpu = optionalInteger(params, 'vcpu');
      const memoryMiB = optionalInteger(params, 'memoryMiB');
      const diskSizeBytes = optionalInteger(params, 'diskSizeBytes');
      if (vcpu !== undefined) changes.vcpu = vcpu;
      if (memoryMiB !== undefined) changes.memoryMiB = memoryMiB;
      if (diskSizeBytes !== undefined) changes.diskSizeBytes = diskSizeBytes;
      const vm = await vms.set(requireString(params, 'ref'), changes);
      return vmInfo(await vms.show(vm.id));
    },
    vmLogs: async (params) => {
      const view = await vms.show(requireString(params, 'ref'));
      return { lines: readConsoleTail(join(vms.vmDir(view.vm), VM_CONSOLE_LOG), optionalInteger(params, 'lines') ?? 100) };
    },
    vmSshTarget: async (params) => {
      const target = await vms.sshTarget(requireString(params, 'ref'));
      return { name: target.vm.name, host: target.host, user: 'root', keyPath: target.keyPath, knownHosts: target.knownHosts };
    },
  };
}
