import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { buildCpio } from './cpio-newc.js';

const root = mkdtempSync(join(tmpdir(), 'banger-cpio-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('busybox cpio unpacks what we write: dirs, files with modes, symlinks', () => {
  const archive = buildCpio([
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/tool', data: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
    { type: 'file', path: 'etc/odd', data: Buffer.from('x'.repeat(5)) },
    { type: 'symlink', path: 'bin/sh', target: 'tool' },
  ]);
  const out = join(root, 'out');
  mkdirSync(out);
  mkdirSync(join(out, 'etc'));
  writeFileSync(join(root, 'a.cpio'), archive);
  execFileSync('busybox', ['cpio', '-i', '-d', '-F', join(root, 'a.cpio')], { cwd: out, stdio: 'pipe' });
  assert.equal(readFileSync(join(out, 'bin', 'tool'), 'utf8'), '#!/bin/sh\necho hi\n');
  assert.equal(lstatSync(join(out, 'bin', 'tool')).mode & 0o777, 0o755);
  assert.equal(readFileSync(join(out, 'etc', 'odd'), 'utf8'), 'xxxxx');
  assert.equal(readlinkSync(join(out, 'bin', 'sh')), 'tool');
});

test('the listing has every entry and ends with the trailer', () => {
  const archive = buildCpio([
    { type: 'dir', path: '/dev' },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
  ]);
  writeFileSync(join(root, 'b.cpio'), archive);
  const listing = execFileSync('busybox', ['cpio', '-t', '-F', join(root, 'b.cpio')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.deepEqual(listing.trim().split('\n'), ['dev', 'dev/console']);
  assert.equal(archive.length % 4, 0);
  assert.ok(archive.includes(Buffer.from('TRAILER!!!')));
});

test('the same inputs give the same bytes', () => {
  const entries = [{ type: 'file' as const, path: 'x', data: Buffer.from('1') }];
  assert.deepEqual(buildCpio(entries), buildCpio(entries));
});
