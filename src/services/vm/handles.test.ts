import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { VM_HANDLES } from '../../config/filenames.js';
import { tempDir } from '../../../test/helpers/fake-vm-parts.js';
import { HandleCache, type VmHandles } from './handles.js';

const dir = tempDir('banger-handles-');
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const handles: VmHandles = {
  vmm: {
    driver: 'qemu',
    pid: 4242,
    controlSocket: '/run/x/qmp.sock',
    accel: 'tcg',
    console: { kind: 'socket', path: '/run/x/console.sock', startedPaused: true },
  },
  tap: 'br0p3',
};

test('handles.json round-trips (console included) and leaves no temp file', () => {
  const cache = new HandleCache();
  cache.set('vm1', dir, handles);
  assert.deepEqual(cache.read(dir), handles);
  assert.deepEqual(readdirSync(dir), [VM_HANDLES]);
});

test('a truncated, garbage or ill-typed handles.json reads as absent, never as a wrong handle', () => {
  const cache = new HandleCache();
  for (const text of [
    '{"vmm": {"pid": 42',
    'garbage',
    'null',
    '{"vmm": {"pid": "42", "controlSocket": "/x", "driver": "qemu"}, "tap": "t"}',
    '{"vmm": {"pid": 42, "controlSocket": "/x", "driver": "bochs"}, "tap": "t"}',
  ]) {
    writeFileSync(join(dir, VM_HANDLES), text);
    assert.equal(cache.read(dir), undefined, text);
  }
});
