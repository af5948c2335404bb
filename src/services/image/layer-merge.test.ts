import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { entryHeader } from '../../workspace/tar-writer.js';
import { MergedTree, normalizeMemberPath } from './layer-merge.js';
import { readTarIndex } from './tar-index.js';

/**
 * Layer flattening against layers written by GNU tar (as image builders
 * write them) and, for the malicious cases, archives crafted byte by byte;
 * each merged tarball is unpacked with GNU tar to check what a VM would see.
 * Runs as root (chown to other ids), as CI runs the tests.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-merge-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;

function dir(name: string): string {
  const path = join(root, `${name}-${counter++}`);
  mkdirSync(path, { recursive: true });
  return path;
}

/** A layer tarball of `tree` (all of it, or only `members`), numeric owners, pax format. */
function layer(tree: string, members: string[] = ['.']): string {
  const path = join(root, `layer-${counter++}.tar`);
  execFileSync('tar', ['--numeric-owner', '--format=pax', '--xattrs', '-C', tree, '-cf', path, ...members]);
  return path;
}

/** A layer from raw entries (names as given: nothing checks them). */
function rawLayer(entries: { name: string; type: 'file' | 'dir' | 'symlink'; target?: string; content?: string }[]): string {
  const path = join(root, `raw-${counter++}.tar`);
  const chunks: Buffer[] = [];
  for (const entry of entries) {
    if (entry.type === 'file') {
      const data = Buffer.from(entry.content ?? '');
      chunks.push(
        entryHeader({ name: entry.name, mode: 0o644, mtime: 0, kind: { type: 'file', size: data.length } }),
        data,
        Buffer.alloc((512 - (data.length % 512)) % 512),
      );
    } else if (entry.type === 'dir') chunks.push(entryHeader({ name: entry.name, mode: 0o755, mtime: 0, kind: { type: 'dir' } }));
    else chunks.push(entryHeader({ name: entry.name, mode: 0o777, mtime: 0, kind: { type: 'symlink', target: entry.target ?? '' } }));
  }
  chunks.push(Buffer.alloc(1024));
  writeFileSync(path, Buffer.concat(chunks));
  return path;
}

async function merge(layers: string[]): Promise<{ tar: string; out: string; tree: MergedTree }> {
  const tree = await MergedTree.build(layers);
  const tar = join(root, `merged-${counter++}.tar`);
  await tree.write(tar);
  const out = dir('unpacked');
  execFileSync('tar', ['-C', out, '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs', '-xf', tar]);
  return { tar, out, tree };
}

describe('layer merge', { timeout: 60_000 }, () => {
  test('names are normalised and ".." is refused', () => {
    assert.equal(normalizeMemberPath('./etc//passwd', 't'), 'etc/passwd');
    assert.equal(normalizeMemberPath('/usr/bin/', 't'), 'usr/bin');
    assert.equal(normalizeMemberPath('./', 't'), '');
    assert.throws(() => normalizeMemberPath('a/../../etc/shadow', 't'), { code: 'ERR_IMAGE_UNSAFE' });
  });

  test('whiteouts and opaque directories hide lower content; same-layer content stays', async () => {
    const base = dir('base');
    mkdirSync(join(base, 'etc'));
    writeFileSync(join(base, 'etc', 'keep'), 'keep');
    writeFileSync(join(base, 'etc', 'gone'), 'gone');
    mkdirSync(join(base, 'opt', 'old', 'deep'), { recursive: true });
    writeFileSync(join(base, 'opt', 'old', 'deep', 'f'), 'lower');
    writeFileSync(join(base, 'opt', 'lower-only'), 'lower');
    const top = dir('top');
    mkdirSync(join(top, 'etc'));
    writeFileSync(join(top, 'etc', '.wh.gone'), '');
    mkdirSync(join(top, 'opt', 'old'), { recursive: true });
    writeFileSync(join(top, 'opt', '.wh..wh..opq'), '');
    writeFileSync(join(top, 'opt', 'old', 'new'), 'upper');
    const { out, tar } = await merge([layer(base), layer(top)]);
    assert.equal(readFileSync(join(out, 'etc', 'keep'), 'utf8'), 'keep');
    assert.throws(() => statSync(join(out, 'etc', 'gone')));
    assert.deepEqual(readdirSync(join(out, 'opt')), ['old']);
    assert.deepEqual(readdirSync(join(out, 'opt', 'old')), ['new']);
    const names = (await readTarIndex(tar)).map((m) => m.name);
    assert.ok(!names.some((n) => n.includes('.wh.')), 'no whiteout markers in the output');
    assert.equal(new Set(names.map((n) => normalizeMemberPath(n, 't'))).size, names.length, 'every path once');
  });

  test('owners, setuid bits and modes are kept as the layers recorded them', async () => {
    const base = dir('owners');
    mkdirSync(join(base, 'usr', 'bin'), { recursive: true });
    writeFileSync(join(base, 'usr', 'bin', 'su'), 'su');
    chmodSync(join(base, 'usr', 'bin', 'su'), 0o4755);
    mkdirSync(join(base, 'home', 'dev'), { recursive: true });
    writeFileSync(join(base, 'home', 'dev', 'notes'), 'n');
    chownSync(join(base, 'home', 'dev'), 1000, 1000);
    chownSync(join(base, 'home', 'dev', 'notes'), 1000, 1000);
    chmodSync(join(base, 'home', 'dev', 'notes'), 0o600);
    const { out, tree } = await merge([layer(base)]);
    const su = statSync(join(out, 'usr', 'bin', 'su'));
    assert.equal(su.mode & 0o7777, 0o4755);
    assert.equal(su.uid, 0);
    const notes = statSync(join(out, 'home', 'dev', 'notes'));
    assert.equal(notes.uid, 1000);
    assert.equal(notes.mode & 0o7777, 0o600);
    assert.equal(statSync(join(out, 'home', 'dev')).uid, 1000);
    assert.equal(tree.stat('/usr/bin/su')?.mode, 0o4755);
  });

  test('a later layer replaces a file by a directory, and a directory over a directory updates its metadata only', async () => {
    const base = dir('replace');
    writeFileSync(join(base, 'thing'), 'file');
    mkdirSync(join(base, 'data'));
    writeFileSync(join(base, 'data', 'a'), 'a');
    const top = dir('replace-top');
    mkdirSync(join(top, 'thing'));
    writeFileSync(join(top, 'thing', 'inside'), 'x');
    mkdirSync(join(top, 'data'));
    chmodSync(join(top, 'data'), 0o700);
    const { out } = await merge([layer(base), layer(top)]);
    assert.ok(statSync(join(out, 'thing')).isDirectory());
    assert.equal(readFileSync(join(out, 'data', 'a'), 'utf8'), 'a');
    assert.equal(statSync(join(out, 'data')).mode & 0o777, 0o700);
  });

  test('hard links stay links; when the original path goes, the surviving links keep the data', async () => {
    const base = dir('links');
    mkdirSync(join(base, 'bin'));
    writeFileSync(join(base, 'bin', 'busybox'), 'BB');
    linkSync(join(base, 'bin', 'busybox'), join(base, 'bin', 'sh'));
    linkSync(join(base, 'bin', 'busybox'), join(base, 'bin', 'ls'));
    const top = dir('links-top');
    mkdirSync(join(top, 'bin'));
    writeFileSync(join(top, 'bin', '.wh.busybox'), '');
    const same = await merge([layer(base)]);
    assert.equal(statSync(join(same.out, 'bin', 'sh')).ino, statSync(join(same.out, 'bin', 'busybox')).ino);
    const { out } = await merge([layer(base), layer(top)]);
    assert.throws(() => lstatSync(join(out, 'bin', 'busybox')));
    assert.equal(readFileSync(join(out, 'bin', 'sh'), 'utf8'), 'BB');
    assert.equal(statSync(join(out, 'bin', 'ls')).ino, statSync(join(out, 'bin', 'sh')).ino);
  });

  test('an entry with a ".." component is refused', async () => {
    await assert.rejects(MergedTree.build([rawLayer([{ name: '../../etc/evil', type: 'file', content: 'x' }])]), { code: 'ERR_IMAGE_UNSAFE', message: /\.\./ });
  });

  test('writing through a symlink to an absolute path is refused (an unpacker would follow it out of the root)', async () => {
    const lower = rawLayer([{ name: 'etc', type: 'symlink', target: '/home/victim' }]);
    const upper = rawLayer([{ name: 'etc/profile', type: 'file', content: 'pwned' }]);
    await assert.rejects(MergedTree.build([lower, upper]), { code: 'ERR_IMAGE_UNSAFE', message: /symbolic link etc -> \/home\/victim/ });
  });

  test('a directory entry that replaces a symlink is a legitimate replacement', async () => {
    const lower = rawLayer([{ name: 'lib', type: 'symlink', target: 'usr/lib' }]);
    const upper = rawLayer([
      { name: 'lib/', type: 'dir' },
      { name: 'lib/x', type: 'file', content: 'x' },
    ]);
    const { out } = await merge([lower, upper]);
    assert.ok(lstatSync(join(out, 'lib')).isDirectory());
  });

  test('readFile follows symlinks inside the image, absolute ones from its root', async () => {
    const base = dir('read');
    mkdirSync(join(base, 'usr', 'lib'), { recursive: true });
    writeFileSync(join(base, 'usr', 'lib', 'os-release'), 'ID=test\n');
    mkdirSync(join(base, 'etc'));
    symlinkSync('/usr/lib/os-release', join(base, 'etc', 'os-release'));
    symlinkSync('usr/lib', join(base, 'lib'));
    const tree = await MergedTree.build([layer(base)]);
    assert.equal((await tree.readFile('/etc/os-release'))?.toString(), 'ID=test\n');
    assert.equal((await tree.readFile('/lib/os-release'))?.toString(), 'ID=test\n');
    assert.equal(await tree.readFile('/etc/missing'), undefined);
  });

  test('extras replace what is at their path and add directories banger needs', async () => {
    const base = dir('extras');
    mkdirSync(join(base, 'etc'));
    writeFileSync(join(base, 'etc', 'shells'), '/bin/sh\n');
    const tree = await MergedTree.build([layer(base)]);
    tree.addExtras([
      { path: '/etc/shells', type: 'file', content: Buffer.from('/bin/sh\n/bin/ash\n'), mode: 0o644 },
      { path: '/banger/ssh', type: 'directory', mode: 0o755 },
      { path: '/banger/ssh/tool', type: 'file', content: Buffer.from('t'), mode: 0o755 },
    ]);
    const tar = join(root, 'extras.tar');
    await tree.write(tar);
    const out = dir('extras-out');
    execFileSync('tar', ['-C', out, '--numeric-owner', '-xf', tar]);
    assert.equal(readFileSync(join(out, 'etc', 'shells'), 'utf8'), '/bin/sh\n/bin/ash\n');
    assert.equal(statSync(join(out, 'banger', 'ssh', 'tool')).mode & 0o777, 0o755);
    const shells = (await readTarIndex(tar)).filter((m) => m.name.endsWith('etc/shells'));
    assert.equal(shells.length, 1, 'the replaced file appears once');
  });
});
