import { loadConfig } from '../config/load.js';
import type { Layout } from '../config/paths.js';
import type { VmDefaultsConfig } from '../config/schema.js';
import { hostFacts, resolveVmDefaults } from '../config/vm-defaults.js';
import type { VmDefaultsInfo } from '../rpc/methods.js';

/**
 * What vm.create fills in for spec fields a caller leaves out. The daemon,
 * not the CLI, resolves them, so every client (CLI, SDK, MCP) gets the same
 * VM for the same call. [vm_defaults] is read from config.toml at each call,
 * as the CLI did before, so an edit applies without a daemon restart; a
 * config that no longer parses falls back to what the daemon started with
 * (the parse error is reported by doctor and at the next daemon start).
 */
export function vmDefaultsReader(layout: Layout, home: string, atStartup: VmDefaultsConfig): () => VmDefaultsInfo {
  return () => {
    let configured = atStartup;
    try {
      configured = loadConfig(layout.configFile, home).vmDefaults;
    } catch {
      // keep the startup values
    }
    const resolved = resolveVmDefaults(configured, hostFacts());
    return {
      vcpu: resolved.vcpu.value,
      memoryMiB: resolved.memoryMiB.value,
      diskSizeBytes: resolved.diskSizeBytes.value,
      init: 'minimal',
      nat: false,
      network: 'isolated',
      sources: { vcpu: resolved.vcpu.source, memoryMiB: resolved.memoryMiB.source, diskSizeBytes: resolved.diskSizeBytes.source },
    };
  };
}
