import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { readArArchive } from './ar-archive.js';

const root = mkdtempSync(join(tmpdir(), 'banger-ar-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('reads members of an archive made by the real ar, odd sizes included', () => {
  writeFileSync(join(root, 'debian-binary'), '2.0\n');
  writeFileSync(join(root, 'data.tar.xz'), Buffer.from([1, 2, 3]));
  execFileSync('ar', ['rc', 'pkg.deb', 'debian-binary', 'data.tar.xz'], { cwd: root });
  const members = readArArchive(readFileSync(join(root, 'pkg.deb')));
  assert.deepEqual(
    members.map((m) => [m.name, [...m.data]]),
    [
      ['debian-binary', [...Buffer.from('2.0\n')]],
      ['data.tar.xz', [1, 2, 3]],
    ],
  );
});

test('rejects what is not an ar archive', () => {
  assert.throws(() => readArArchive(Buffer.from('PK\x03\x04 a zip file')), /not an ar archive/);
});
