import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { after, test } from 'node:test';

import { findExecutable } from '../host/executables.js';
import { tarStream, walkTree, type TarEntry } from './tar-writer.js';

/** Cross-checked against the real extractors a guest has: GNU tar, and busybox's. */

const root = mkdtempSync(join(tmpdir(), 'banger-tar-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const src = join(root, 'src');
const longDir = 'd'.repeat(60);
const longName = `${longDir}/${'n'.repeat(70)} é.txt`;
const files: Record<string, { content: Buffer; mode: number }> = {
  'plain.txt': { content: Buffer.from('hello\n'), mode: 0o644 },
  'run.sh': { content: Buffer.from('#!/bin/sh\necho hi\n'), mode: 0o755 },
  empty: { content: Buffer.alloc(0), mode: 0o600 },
  'spaces and ünïcode.bin': { content: Buffer.from([0, 1, 2, 3, 255, 254]), mode: 0o644 },
  [longName]: { content: Buffer.from('long\n'), mode: 0o644 },
  'big.bin': { content: Buffer.alloc(3 * 1024 * 1024 + 17, 0xab), mode: 0o644 },
};
const longTarget = `${'t'.repeat(120)}/target`;

function setUp(): TarEntry[] {
  for (const [name, { content, mode }] of Object.entries(files)) {
    const full = join(src, name);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, content);
    chmodSync(full, mode);
    utimesSync(full, 1_700_000_000, 1_700_000_000);
  }
  symlinkSync('plain.txt', join(src, 'link'));
  symlinkSync(longTarget, join(src, 'longlink'));
  return [...Object.keys(files), 'link', 'longlink', 'vanished'].map((name) => ({ name, source: join(src, name) }));
}
const entries = setUp();

function extractWith(command: string[], archive: Buffer, into: string): void {
  mkdirSync(into, { recursive: true });
  execFileSync(command[0] ?? '', [...command.slice(1), '-C', into], { input: archive, stdio: ['pipe', 'pipe', 'pipe'] });
}

function assertTree(dir: string, label: string): void {
  for (const [name, { content, mode }] of Object.entries(files)) {
    const full = join(dir, name);
    assert.ok(readFileSync(full).equals(content), `${label}: ${name} content`);
    assert.equal(lstatSync(full).mode & 0o777, mode, `${label}: ${name} mode`);
    assert.equal(Math.round(lstatSync(full).mtimeMs / 1000), 1_700_000_000, `${label}: ${name} mtime`);
  }
  assert.equal(readlinkSync(join(dir, 'link')), 'plain.txt', `${label}: symlink`);
  assert.equal(readlinkSync(join(dir, 'longlink')), longTarget, `${label}: long symlink target`);
}

test('GNU tar extracts the archive exactly (long names and targets via pax, modes, mtimes, symlinks)', { timeout: 30_000 }, async () => {
  let progress = 0;
  const archive = await buffer(tarStream(entries, (total) => (progress = total)));
  assert.equal(archive.length % 512, 0);
  assert.equal(progress, archive.length, 'progress counts every byte');
  extractWith(['tar', '-x', '-f', '-'], archive, join(root, 'gnu'));
  assertTree(join(root, 'gnu'), 'gnu tar');
  const listing = execFileSync('tar', ['-tv', '--numeric-owner', '-f', '-'], { input: archive, encoding: 'utf8' });
  for (const line of listing.trim().split('\n')) assert.match(line, /^\S+ 0\/0 /, `owned by root: ${line}`);
});

test('busybox tar extracts it too', { timeout: 30_000 }, async () => {
  const busybox = findExecutable('busybox', process.env);
  assert.ok(busybox !== undefined, 'busybox-static is a host requirement (scripts/host-packages.txt)');
  const archive = await buffer(tarStream(entries));
  extractWith([busybox, 'tar', '-x', '-f', '-'], archive, join(root, 'busybox'));
  assertTree(join(root, 'busybox'), 'busybox tar');
});

test('walkTree lists directories before their contents and honours skip', { timeout: 10_000 }, async () => {
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'refs', 'heads'), { recursive: true });
  mkdirSync(join(tree, 'refs', 'tags'));
  writeFileSync(join(tree, 'HEAD'), 'ref: refs/heads/main\n');
  writeFileSync(join(tree, 'index.lock'), '');
  writeFileSync(join(tree, 'refs', 'heads', 'main'), 'x\n');
  const listed = await walkTree(tree, '.git', (rel) => rel.endsWith('.lock'));
  assert.deepEqual(
    listed.map((e) => e.name),
    ['.git', '.git/HEAD', '.git/refs', '.git/refs/heads', '.git/refs/heads/main', '.git/refs/tags'],
  );
  const out = join(root, 'tree-out');
  extractWith(['tar', '-x', '-f', '-'], await buffer(tarStream(listed)), out);
  assert.ok(lstatSync(join(out, '.git', 'refs', 'tags')).isDirectory(), 'empty directories survive');
  assert.equal(readFileSync(join(out, '.git', 'HEAD'), 'utf8'), 'ref: refs/heads/main\n');
});
