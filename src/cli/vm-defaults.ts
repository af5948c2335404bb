import { loadConfig } from '../config/load.js';
import type { Layout } from '../config/paths.js';
import { hostFacts, resolveVmDefaults, type ResolvedVmDefaults } from '../config/vm-defaults.js';

/**
 * The defaults `vm create`/`vm run` show in --help and send to the daemon:
 * config.toml [vm_defaults] -> host heuristics -> built-in floor. The CLI
 * resolves them so the printed `spec:` line is exactly what gets created.
 * An invalid config falls back to the floor here; the daemon reports the
 * config error itself.
 */
export function cliVmDefaults(layout: Layout, home: string): ResolvedVmDefaults {
  let vmDefaults = {};
  try {
    vmDefaults = loadConfig(layout.configFile, home).vmDefaults;
  } catch {
    // reported by the daemon (and doctor)
  }
  return resolveVmDefaults(vmDefaults, hostFacts());
}
