import { availableParallelism, totalmem } from 'node:os';

import { formatSize } from './sizes.js';
import type { VmDefaultsConfig } from './schema.js';

/**
 * Defaults for --vcpu, --memory and --disk-size, resolved in one stated order:
 *   1. [vm_defaults] in config.toml            -> 'config'
 *   2. host heuristics, when at least the floor -> 'auto'
 *        vcpu   = cpus / 4, capped at 4
 *        memory = RAM / 8, capped at 8 GiB, in whole 256 MiB steps
 *   3. the built-in floor                       -> 'builtin'
 *        1 vcpu, 1024 MiB, 8G disk (disk has no heuristic)
 * Each value carries where it came from, so doctor and `vm create` can say.
 */
export type Provenance = 'config' | 'auto' | 'builtin';

export interface Sourced<T> {
  value: T;
  source: Provenance;
}

export interface ResolvedVmDefaults {
  vcpu: Sourced<number>;
  memoryMiB: Sourced<number>;
  diskSizeBytes: Sourced<number>;
}

export interface HostFacts {
  cpus: number;
  memoryBytes: number;
}

export const FLOOR_VCPU = 1;
export const FLOOR_MEMORY_MIB = 1024;
export const FLOOR_DISK_BYTES = 8 * 1024 ** 3;
const MAX_AUTO_VCPU = 4;
const MAX_AUTO_MEMORY_MIB = 8192;
const MEMORY_STEP_MIB = 256;

export function hostFacts(): HostFacts {
  return { cpus: availableParallelism(), memoryBytes: totalmem() };
}

function pick(configured: number | undefined, heuristic: number | undefined, floor: number): Sourced<number> {
  if (configured !== undefined) return { value: configured, source: 'config' };
  if (heuristic !== undefined && heuristic >= floor) return { value: heuristic, source: 'auto' };
  return { value: floor, source: 'builtin' };
}

export function resolveVmDefaults(config: VmDefaultsConfig, host: HostFacts): ResolvedVmDefaults {
  const autoVcpu = Math.min(MAX_AUTO_VCPU, Math.floor(host.cpus / 4));
  const eighthMiB = Math.floor(host.memoryBytes / 8 / 1024 ** 2);
  const autoMemory = Math.min(MAX_AUTO_MEMORY_MIB, Math.floor(eighthMiB / MEMORY_STEP_MIB) * MEMORY_STEP_MIB);
  return {
    vcpu: pick(config.vcpu, autoVcpu, FLOOR_VCPU),
    memoryMiB: pick(config.memoryMiB, autoMemory, FLOOR_MEMORY_MIB),
    diskSizeBytes: pick(config.diskSizeBytes, undefined, FLOOR_DISK_BYTES),
  };
}

/** `2 vcpu · 1024 MiB · 8G disk` — the `spec:` line of vm create/run. */
export function formatSpec(spec: { vcpu: number; memoryMiB: number; diskSizeBytes: number }): string {
  return `${spec.vcpu} vcpu · ${spec.memoryMiB} MiB · ${formatSize(spec.diskSizeBytes)} disk`;
}
