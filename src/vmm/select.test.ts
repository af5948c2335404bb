import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { selectDriver } from './select.js';

const root = mkdtempSync(join(tmpdir(), 'banger-select-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function executable(name: string): string {
  const path = join(root, name);
  writeFileSync(path, '#!/bin/sh\n');
  chmodSync(path, 0o755);
  return path;
}

const qemu = executable('qemu-system-x86_64');
const firecracker = executable('firecracker');
const absent = join(root, 'not-installed');
const usable = { kind: 'usable', module: 'kvm_intel' } as const;
const pvm = { kind: 'pvm' } as const;

test('auto picks Firecracker when it is installed and KVM is usable', () => {
  const choice = selectDriver({ vmm: 'auto', qemuBin: qemu, firecrackerBin: firecracker }, {}, usable);
  assert.equal(choice.driver.name, 'firecracker');
  assert.match(choice.reason, /KVM usable \(kvm_intel\)/);
});

test('auto falls back to QEMU under TCG on a PVM host, saying why', () => {
  const choice = selectDriver({ vmm: 'auto', qemuBin: qemu, firecrackerBin: firecracker }, {}, pvm);
  assert.equal(choice.driver.name, 'qemu');
  assert.equal(choice.driver.features.softwareEmulation, true);
  assert.match(choice.reason, /no usable KVM \(pvm\): TCG emulation; firecracker needs KVM/);
});

test('auto uses QEMU with KVM when Firecracker is not installed', () => {
  const choice = selectDriver({ vmm: 'auto', qemuBin: qemu, firecrackerBin: absent }, {}, usable);
  assert.equal(choice.driver.name, 'qemu');
  assert.equal(choice.driver.features.softwareEmulation, false);
  assert.match(choice.reason, /no firecracker binary/);
});

test('vmm = qemu never picks Firecracker', () => {
  assert.equal(selectDriver({ vmm: 'qemu', qemuBin: qemu, firecrackerBin: firecracker }, {}, usable).driver.name, 'qemu');
});

test('vmm = firecracker without KVM or without the binary is a clear error', () => {
  assert.throws(
    () => selectDriver({ vmm: 'firecracker', qemuBin: qemu, firecrackerBin: firecracker }, {}, pvm),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_KVM_UNAVAILABLE',
  );
  assert.throws(
    () => selectDriver({ vmm: 'firecracker', qemuBin: qemu, firecrackerBin: absent }, {}, usable),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_HOST_TOOL_MISSING',
  );
});

test('no QEMU at all is ERR_HOST_TOOL_MISSING with the package to install', () => {
  assert.throws(
    () => selectDriver({ vmm: 'qemu', qemuBin: absent }, {}, pvm),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_HOST_TOOL_MISSING' && e.hint === 'apt-get install qemu-system-x86',
  );
});
