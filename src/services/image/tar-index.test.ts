import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { readTarIndex, type TarMember } from './tar-index.js';

/**
 * readTarIndex against archives written by GNU tar itself, in the pax format
 * mmdebstrap uses and in GNU format (long-name entries, base-256 numbers).
 * Needs root (chown to other ids, mknod), as CI runs the tests.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-tar-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const longName = `${'d'.repeat(60)}/${'f'.repeat(80)}`;
const longTarget = `/${'t'.repeat(150)}`;

function tree(): string {
  const dir = mkdtempSync(join(root, 'tree-'));
  mkdirSync(join(dir, 'etc'));
  writeFileSync(join(dir, 'etc', 'empty'), '');
  writeFileSync(join(dir, 'etc', 'shadow'), 'x');
  chownSync(join(dir, 'etc', 'shadow'), 0, 42);
  chmodSync(join(dir, 'etc', 'shadow'), 0o640);
  writeFileSync(join(dir, 'passwd'), Buffer.alloc(4097));
  chmodSync(join(dir, 'passwd'), 0o4755);
  linkSync(join(dir, 'passwd'), join(dir, 'passwd-link'));
  symlinkSync(longTarget, join(dir, 'long-symlink'));
  mkdirSync(join(dir, 'd'.repeat(60)));
  writeFileSync(join(dir, longName), 'long');
  writeFileSync(join(dir, 'big-uid'), 'b');
  chownSync(join(dir, 'big-uid'), 3_000_000, 7);
  mkdirSync(join(dir, 'dev'));
  execFileSync('mknod', ['-m', '0666', join(dir, 'dev', 'null'), 'c', '1', '3']);
  execFileSync('mknod', ['-m', '0660', join(dir, 'dev', 'vda'), 'b', '254', '0']);
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  return dir;
}

function byName(members: TarMember[]): Map<string, TarMember> {
  return new Map(members.map((m) => [m.name, m]));
}

for (const format of ['pax', 'gnu'] as const) {
  test(`members of a ${format} archive: names, types, sizes, modes, owners, links, devices`, async () => {
    const dir = tree();
    const archive = join(root, `${format}.tar`);
    execFileSync('tar', ['--numeric-owner', `--format=${format}`, '--sort=name', '-C', dir, '-cf', archive, '.']);
    const members = await readTarIndex(archive);
    const listed = execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).trimEnd().split('\n');
    assert.deepEqual(
      members.map((m) => m.name),
      listed,
      'the same members, in the same order, as tar -t',
    );
    const m = byName(members);
    assert.equal(m.get('./')?.type, 'directory');
    assert.deepEqual([m.get('./etc/empty')?.type, m.get('./etc/empty')?.size], ['file', 0]);
    assert.deepEqual([m.get('./etc/shadow')?.mode, m.get('./etc/shadow')?.uid, m.get('./etc/shadow')?.gid], [0o640, 0, 42]);
    assert.deepEqual([m.get('./passwd')?.size, m.get('./passwd')?.mode], [4097, 0o4755]);
    assert.deepEqual([m.get('./passwd-link')?.type, m.get('./passwd-link')?.linkName, m.get('./passwd-link')?.size], ['hardlink', './passwd', 0]);
    assert.deepEqual([m.get('./long-symlink')?.type, m.get('./long-symlink')?.linkName], ['symlink', longTarget]);
    assert.equal(m.get(`./${longName}`)?.size, 4);
    assert.deepEqual([m.get('./big-uid')?.uid, m.get('./big-uid')?.gid], [3_000_000, 7]);
    assert.deepEqual(
      [m.get('./dev/null')?.type, m.get('./dev/null')?.devMajor, m.get('./dev/null')?.devMinor, m.get('./dev/null')?.mode],
      ['char', 1, 3, 0o666],
    );
    assert.deepEqual([m.get('./dev/vda')?.type, m.get('./dev/vda')?.devMajor, m.get('./dev/vda')?.devMinor], ['block', 254, 0]);
    assert.equal(m.get('./fifo')?.type, 'fifo');
  });
}

test('a corrupt header is an error, not a wrong index', async () => {
  const dir = tree();
  const archive = join(root, 'corrupt.tar');
  execFileSync('tar', ['-C', dir, '-cf', archive, '.']);
  const bytes = readFileSync(archive);
  bytes[0] = bytes[0] === 0x41 ? 0x42 : 0x41;
  writeFileSync(archive, bytes);
  await assert.rejects(readTarIndex(archive), /bad tar header checksum at offset 0/);
});
