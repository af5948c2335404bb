import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { ensureRuntimeDir, inspectRuntimeDir } from './runtime-dir.js';

const root = mkdtempSync(join(tmpdir(), 'banger-rtdir-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
const uid = process.getuid?.() ?? 0;

test('a missing runtime dir is created at 0700 even under a permissive umask', () => {
  const dir = join(root, 'fresh', 'banger');
  assert.deepEqual(inspectRuntimeDir(dir, uid), { kind: 'missing' });
  const old = process.umask(0o000);
  try {
    ensureRuntimeDir(dir, uid);
  } finally {
    process.umask(old);
  }
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.deepEqual(inspectRuntimeDir(dir, uid), { kind: 'ok', mode: 0o700 });
});

test('a looser runtime dir is reported, then tightened', () => {
  const dir = join(root, 'loose');
  mkdirSync(dir);
  chmodSync(dir, 0o755);
  assert.deepEqual(inspectRuntimeDir(dir, uid), { kind: 'loose', mode: 0o755 });
  ensureRuntimeDir(dir, uid);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

function refused(fn: () => void, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof BangerError && e.code === 'ERR_RUNTIME_DIR_INSECURE' && pattern.test(e.message));
}

test('a symlink is refused even when it points at a private dir of ours', () => {
  const target = join(root, 'target');
  mkdirSync(target, { mode: 0o700 });
  const link = join(root, 'link');
  symlinkSync(target, link);
  assert.deepEqual(inspectRuntimeDir(link, uid), { kind: 'symlink' });
  refused(() => {
    ensureRuntimeDir(link, uid);
  }, /is a symlink/);
});

test('a dir owned by another user is refused and left alone', () => {
  const dir = join(root, 'foreign');
  mkdirSync(dir, { mode: 0o777 });
  chmodSync(dir, 0o777);
  chownSync(dir, 65534, 65534);
  refused(() => {
    ensureRuntimeDir(dir, uid);
  }, /owned by uid 65534/);
  assert.equal(statSync(dir).mode & 0o777, 0o777, 'not chmodded');
});

test('a file in the way is refused', () => {
  const file = join(root, 'file');
  writeFileSync(file, '');
  refused(() => {
    ensureRuntimeDir(file, uid);
  }, /not a directory/);
});
