import type { DaemonEvent, VmInfo, VmStatsSample } from '../rpc/methods.js';

/** VM records and events for the TUI's unit tests (shaped as the daemon sends them). */

export function vmInfo(name: string, overrides: Partial<VmInfo> = {}): VmInfo {
  return {
    id: `id-${name}`,
    name,
    state: 'running',
    image: 'debian-bookworm',
    ip: '10.0.0.2',
    spec: { vcpu: 2, memoryMiB: 1024, diskSizeBytes: 8 * 1024 ** 3, init: 'minimal', nat: false, network: 'isolated' },
    lastError: null,
    createdAt: '2025-01-01T00:00:00.000Z',
    accel: 'tcg',
    pid: 1234,
    workspace: null,
    stats: null,
    ...overrides,
  };
}

export function sample(overrides: { cpuPercent?: number; usedMiB?: number; totalMiB?: number; uptimeSeconds?: number; guest?: null } = {}): VmStatsSample {
  const total = (overrides.totalMiB ?? 1024) * 1024 ** 2;
  return {
    at: '2025-01-01T00:01:00.000Z',
    vmm: { cpuPercent: overrides.cpuPercent ?? 12.4, rssBytes: 300 * 1024 ** 2 },
    guest:
      overrides.guest === null
        ? null
        : {
            memTotalBytes: total,
            memAvailableBytes: total - (overrides.usedMiB ?? 256) * 1024 ** 2,
            load1: 0.1,
            load5: 0.1,
            load15: 0.1,
            diskTotalBytes: 8 * 1024 ** 3,
            diskUsedBytes: 1024 ** 3,
            uptimeSeconds: overrides.uptimeSeconds ?? 75,
          },
  };
}

export const changed = (vm: VmInfo): DaemonEvent => ({ token: 't', kind: 'vm.changed', vm });
export const deleted = (vm: VmInfo): DaemonEvent => ({ token: 't', kind: 'vm.deleted', vm: { id: vm.id, name: vm.name } });
export const stats = (vm: VmInfo, s: VmStatsSample): DaemonEvent => ({ token: 't', kind: 'vm.stats', vm: { id: vm.id, name: vm.name }, sample: s });
