import assert from 'node:assert/strict';
import { test } from 'node:test';

import { parseSize, formatSize } from './sizes.js';
import { formatSpec, resolveVmDefaults } from './vm-defaults.js';

const GiB = 1024 ** 3;

const CASES: [string, { cpus: number; memoryBytes: number }, object, [number, string, number, string, number, string]][] = [
  ['8 cores, 32G', { cpus: 8, memoryBytes: 32 * GiB }, {}, [2, 'auto', 4096, 'auto', 8 * GiB, 'builtin']],
  ['2 cores, 24G (a dev/CI machine here)', { cpus: 2, memoryBytes: 24 * GiB }, {}, [1, 'builtin', 3072, 'auto', 8 * GiB, 'builtin']],
  ['64 cores, 1T: capped', { cpus: 64, memoryBytes: 1024 * GiB }, {}, [4, 'auto', 8192, 'auto', 8 * GiB, 'builtin']],
  ['1 core, 2G: floors', { cpus: 1, memoryBytes: 2 * GiB }, {}, [1, 'builtin', 1024, 'builtin', 8 * GiB, 'builtin']],
  ['odd RAM rounds down to 256 MiB steps', { cpus: 4, memoryBytes: 22.5 * GiB }, {}, [1, 'auto', 2816, 'auto', 8 * GiB, 'builtin']],
  [
    'config wins over everything',
    { cpus: 64, memoryBytes: 1024 * GiB },
    { vcpu: 1, memoryMiB: 512, diskSizeBytes: 20 * GiB },
    [1, 'config', 512, 'config', 20 * GiB, 'config'],
  ],
];

for (const [what, host, config, [vcpu, vcpuSource, memory, memorySource, disk, diskSource]] of CASES) {
  test(`vm defaults: ${what}`, () => {
    const d = resolveVmDefaults(config, host);
    assert.deepEqual(d, {
      vcpu: { value: vcpu, source: vcpuSource },
      memoryMiB: { value: memory, source: memorySource },
      diskSizeBytes: { value: disk, source: diskSource },
    });
  });
}

test('formatSpec prints the spec line', () => {
  assert.equal(formatSpec({ vcpu: 2, memoryMiB: 1024, diskSizeBytes: 8 * GiB }), '2 vcpu · 1024 MiB · 8G disk');
  assert.equal(formatSpec({ vcpu: 1, memoryMiB: 1536, diskSizeBytes: 1536 * 1024 ** 2 }), '1 vcpu · 1536 MiB · 1536M disk');
});

test('sizes parse with binary units and format back', () => {
  assert.equal(parseSize('8G'), 8 * GiB);
  assert.equal(parseSize('8GiB'), 8 * GiB);
  assert.equal(parseSize('512m'), 512 * 1024 ** 2);
  assert.equal(parseSize('1T'), 1024 * GiB);
  assert.throws(() => parseSize('8'), /invalid size "8"/);
  assert.throws(() => parseSize('-1G'), /invalid size/);
  assert.equal(formatSize(8 * GiB), '8G');
  assert.equal(formatSize(1536 * 1024 ** 2), '1536M');
  assert.equal(formatSize(1000), '1000B');
});
