import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

import type { BangerConfig } from '../config/schema.js';
import { loadConfig } from '../config/load.js';
import type { Layout } from '../config/paths.js';
import { describeRuntimeDirState, inspectRuntimeDir, isUnsafeRuntimeDir } from '../config/runtime-dir.js';
import { formatSize } from '../config/sizes.js';
import { resolveVmDefaults, type HostFacts } from '../config/vm-defaults.js';
import { toBangerError } from '../rpc/errors.js';
import { openReadOnly } from '../store/database.js';
import { loadMigrations } from '../store/migrations.js';
import { check, type CheckResult } from './report.js';

export function runtimeDirCheck(layout: Layout, uid: number): CheckResult {
  const state = inspectRuntimeDir(layout.runtimeDir, uid);
  const id = 'runtime-dir';
  const name = 'runtime dir';
  if (isUnsafeRuntimeDir(state)) {
    return check(
      id,
      name,
      'fail',
      describeRuntimeDirState(layout.runtimeDir, state),
      `remove ${layout.runtimeDir} or set XDG_RUNTIME_DIR to a private directory`,
    );
  }
  switch (state.kind) {
    case 'missing':
      return check(id, name, 'pass', `${layout.runtimeDir} (created at 0700 when the daemon starts)`);
    case 'loose':
      return check(id, name, 'warn', `${describeRuntimeDirState(layout.runtimeDir, state)}; the daemon tightens it to 0700 when it starts`);
    default:
      return check(id, name, 'pass', describeRuntimeDirState(layout.runtimeDir, state));
  }
}

export function stateDirCheck(layout: Layout): CheckResult {
  const dir = layout.stateDir;
  if (!existsSync(dir)) {
    // Not created yet: it will be, if its nearest existing ancestor is writable.
    let ancestor = dirname(dir);
    while (!existsSync(ancestor) && ancestor !== dirname(ancestor)) ancestor = dirname(ancestor);
    return writable(ancestor)
      ? check('state-dir', 'state dir', 'pass', `${dir} (created on first daemon start)`)
      : check('state-dir', 'state dir', 'fail', `${dir} does not exist and ${ancestor} is not writable`, 'set XDG_STATE_HOME to a writable directory');
  }
  if (!statSync(dir).isDirectory()) return check('state-dir', 'state dir', 'fail', `${dir} is not a directory`, `move ${dir} out of the way`);
  if (!writable(dir)) return check('state-dir', 'state dir', 'fail', `${dir} is not writable`, `fix the permissions of ${dir}`);
  return check('state-dir', 'state dir', 'pass', dir);
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Opens the store read-only: doctor must never apply migrations or create the file. */
export function storeCheck(layout: Layout): CheckResult {
  const path = layout.storePath;
  if (!existsSync(path)) return check('store', 'store', 'pass', `${path} (created on first daemon start)`);
  let store;
  try {
    store = openReadOnly(path);
  } catch (error) {
    const banger = toBangerError(error);
    return check('store', 'store', 'fail', `${path}: ${banger.message}`, banger.hint ?? `check that ${path} is a readable SQLite database`);
  }
  try {
    const version = store.schemaVersion();
    const known = Math.max(0, ...loadMigrations().map((m) => m.id));
    if (version > known) {
      return check(
        'store',
        'store',
        'fail',
        `${path} has schema version ${version}, newer than this banger knows (${known})`,
        'it was written by a newer banger: upgrade banger',
      );
    }
    if (version < known) {
      return check('store', 'store', 'pass', `${path} (schema ${version}; migrations up to ${known} apply on next daemon start)`);
    }
    return check('store', 'store', 'pass', `${path} (schema ${version})`);
  } catch (error) {
    const banger = toBangerError(error);
    return check('store', 'store', 'fail', `${path}: ${banger.message}`, `check that ${path} is a readable SQLite database`);
  } finally {
    store.close();
  }
}

/** Loads config.toml; returns the check and the config (built-in defaults when invalid). */
export function configCheck(layout: Layout, home: string): { result: CheckResult; config: BangerConfig | undefined } {
  const path = layout.configFile;
  try {
    const config = loadConfig(path, home);
    const detail = existsSync(path) ? `${path} is valid` : `no ${path}; using built-in defaults`;
    return { result: check('config', 'config', 'pass', detail), config };
  } catch (error) {
    const banger = toBangerError(error);
    return { result: check('config', 'config', 'fail', banger.message, banger.hint), config: undefined };
  }
}

export function vmDefaultsCheck(config: BangerConfig | undefined, host: HostFacts, configPath: string): CheckResult {
  if (config === undefined) return check('vm-defaults', 'vm defaults', 'warn', 'not resolved: the config file is invalid', 'fix the config error above');
  const d = resolveVmDefaults(config.vmDefaults, host);
  const detail =
    `${d.vcpu.value} vcpu (${d.vcpu.source}) · ${d.memoryMiB.value} MiB (${d.memoryMiB.source}) · ` +
    `${formatSize(d.diskSizeBytes.value)} disk (${d.diskSizeBytes.source}); override in ${configPath} [vm_defaults]`;
  return check('vm-defaults', 'vm defaults', 'pass', detail);
}
