import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { detectKvm } from './kvm.js';

const root = mkdtempSync(join(tmpdir(), 'banger-kvm-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fake /dev/kvm plus /sys/module with the given modules loaded. */
function host(name: string, options: { dev: boolean; modules: string[] }): { devKvm: string; sysModuleDir: string } {
  const dir = join(root, name);
  const sysModuleDir = join(dir, 'sys', 'module');
  mkdirSync(sysModuleDir, { recursive: true });
  for (const module of options.modules) mkdirSync(join(sysModuleDir, module));
  const devKvm = join(dir, 'kvm');
  if (options.dev) writeFileSync(devKvm, '');
  return { devKvm, sysModuleDir };
}

test('no /dev/kvm is absent', () => {
  assert.deepEqual(detectKvm(host('none', { dev: false, modules: ['kvm', 'kvm_intel'] })), { kind: 'absent' });
});

test('kvm_intel or kvm_amd is usable', () => {
  assert.deepEqual(detectKvm(host('intel', { dev: true, modules: ['kvm', 'kvm_intel'] })), { kind: 'usable', module: 'kvm_intel' });
  assert.deepEqual(detectKvm(host('amd', { dev: true, modules: ['kvm', 'kvm_amd'] })), { kind: 'usable', module: 'kvm_amd' });
});

test('PVM alone is present but unusable', () => {
  assert.deepEqual(detectKvm(host('pvm', { dev: true, modules: ['kvm', 'kvm_pvm'] })), { kind: 'pvm' });
});

test('an unknown KVM provider is reported as such', () => {
  assert.deepEqual(detectKvm(host('other', { dev: true, modules: ['kvm'] })), { kind: 'unknown-module' });
});
