import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { pino } from 'pino';

import { BangerError } from '../../rpc/errors.js';
import type { OpContext } from '../op-context.js';
import { resolveBuildHost } from './build-namespace.js';
import { deviceNodes, deviceNodeScript, ext4Geometry, missingDeviceNodes, packExt4 } from './ext4-pack.js';
import type { TarMember } from './tar-index.js';

/**
 * Image sizing, device-node handling and the real pack (as root, the way CI
 * runs; the rootless pack is exercised by test/integration/image-rootless.test.ts).
 */

const root = mkdtempSync(join(tmpdir(), 'banger-pack-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const MIB = 1024 * 1024;

function member(name: string, type: TarMember['type'], extra: Partial<TarMember> = {}): TarMember {
  return {
    name,
    type,
    size: 0,
    mode: 0o644,
    uid: 0,
    gid: 0,
    linkName: '',
    devMajor: 0,
    devMinor: 0,
    headerOffset: 0,
    mainHeaderOffset: 0,
    dataOffset: 512,
    pax: {},
    ...extra,
  };
}

function ctx(signal: AbortSignal = new AbortController().signal): OpContext {
  return { opId: 'op_test', signal, log: pino({ level: 'silent' }), progress: () => undefined };
}

function debugfs(request: string, image: string): string {
  return execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

test('the image is sized from the tar: 4 KiB blocks per file and directory, an inode each, 1.2x + 128 MiB', () => {
  const members = [
    member('./', 'directory'), // 4096
    member('./empty', 'file'), // 0
    member('./one', 'file', { size: 1 }), // 4096
    member('./block', 'file', { size: 4096 }), // 4096
    member('./block-and-a-bit', 'file', { size: 4097 }), // 8192
    member('./hard', 'hardlink', { linkName: './one' }), // nothing: shares ./one's inode
    member('./fast', 'symlink', { linkName: '/usr/bin/x' }), // kept in the inode
    member('./slow', 'symlink', { linkName: `/${'x'.repeat(59)}` }), // 60 bytes: a block
    member('./dev/null', 'char', { devMajor: 1, devMinor: 3 }),
  ];
  const used = 4096 + 4096 + 4096 + 8192 + 4096 + 8 * 256;
  assert.deepEqual(ext4Geometry(members), {
    sizeBytes: Math.ceil((used * 1.2 + 128 * MIB) / MIB) * MIB,
    inodes: Math.ceil(8 * 1.2) + 1024,
  });
  const bigger = ext4Geometry([...members, member('./big', 'file', { size: 100 * MIB })]);
  assert.equal(bigger.sizeBytes - ext4Geometry(members).sizeBytes, 120 * MIB);
});

test('device nodes are found with their directory; unsafe names are refused', () => {
  const nodes = deviceNodes([
    member('./dev/', 'directory'),
    member('./dev/null', 'char', { mode: 0o666, devMajor: 1, devMinor: 3 }),
    member('dev/pts/ptmx', 'char', { mode: 0o000, devMajor: 5, devMinor: 2 }),
    member('./dev/vda', 'block', { mode: 0o660, gid: 6, devMajor: 254, devMinor: 0 }),
    member('./dev/fifo', 'fifo'),
  ]);
  assert.deepEqual(
    nodes.map((n) => [n.tarName, n.dir, n.name, n.type]),
    [
      ['./dev/null', '/dev', 'null', 'char'],
      ['dev/pts/ptmx', '/dev/pts', 'ptmx', 'char'],
      ['./dev/vda', '/dev', 'vda', 'block'],
    ],
  );
  for (const bad of ['./dev/with space', './dev/"quote"', './dev/new\nline']) {
    assert.throws(
      () => deviceNodes([member(bad, 'char')]),
      (e: unknown) => e instanceof BangerError && e.message.includes('cannot recreate'),
    );
  }
});

test('the debugfs script creates the nodes with mode and owner, and a failed one is noticed', () => {
  const tree = mkdtempSync(join(root, 'tree-'));
  mkdirSync(join(tree, 'dev', 'pts'), { recursive: true });
  const image = join(root, 'devices.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image, '8M']);
  const nodes = deviceNodes([
    member('./dev/null', 'char', { mode: 0o666, devMajor: 1, devMinor: 3 }),
    member('./dev/vda', 'block', { mode: 0o660, gid: 6, devMajor: 254, devMinor: 0 }),
    member('./dev/pts/ptmx', 'char', { mode: 0o000, uid: 0, gid: 5, devMajor: 5, devMinor: 2 }),
  ]);
  const script = join(root, 'devices.debugfs');
  writeFileSync(script, deviceNodeScript(nodes));
  execFileSync('debugfs', ['-w', '-f', script, image], { stdio: 'ignore' });
  assert.deepEqual(missingDeviceNodes('/dev', debugfs('ls -p /dev', image), nodes), []);
  assert.deepEqual(missingDeviceNodes('/dev/pts', debugfs('ls -p /dev/pts', image), nodes), []);
  assert.match(debugfs('stat /dev/vda', image), /Type: block special\s+Mode:\s+0660[\s\S]*Group:\s+6[\s\S]*Device major\/minor number: 254:00/);
  const absent = deviceNodes([member('./dev/zero', 'char', { mode: 0o666, devMajor: 1, devMinor: 5 })]);
  assert.deepEqual(
    missingDeviceNodes('/dev', debugfs('ls -p /dev', image), absent).map((n) => n.name),
    ['zero'],
  );
  execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });
});

test('packing keeps owners, modes, hard links, file capabilities and device nodes, and leaves no scratch behind', async () => {
  const tree = mkdtempSync(join(root, 'tree-'));
  chmodSync(tree, 0o755);
  mkdirSync(join(tree, 'etc'));
  mkdirSync(join(tree, 'root'), { mode: 0o700 });
  writeFileSync(join(tree, 'etc', 'shadow'), 'root:*:1::::::\n');
  chownSync(join(tree, 'etc', 'shadow'), 0, 42);
  chmodSync(join(tree, 'etc', 'shadow'), 0o640);
  writeFileSync(join(tree, 'passwd'), 'elf');
  chmodSync(join(tree, 'passwd'), 0o4755);
  linkSync(join(tree, 'passwd'), join(tree, 'passwd-again'));
  symlinkSync('/dev/null', join(tree, 'masked.service'));
  writeFileSync(join(tree, 'ping'), 'elf');
  // cap_net_raw+ep, the way iputils-ping ships it
  execFileSync('python3', [
    '-c',
    'import os, struct, sys; os.setxattr(sys.argv[1], "security.capability", struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0))',
    join(tree, 'ping'),
  ]);
  mkdirSync(join(tree, 'dev'));
  execFileSync('mknod', ['-m', '0666', join(tree, 'dev', 'null'), 'c', '1', '3']);
  const tarball = join(root, 'root.tar');
  execFileSync('tar', ['--numeric-owner', '--format=pax', '--xattrs', '-C', tree, '-cf', tarball, '.']);

  const scratchParent = mkdtempSync(join(root, 'scratch-'));
  const host = resolveBuildHost({ scratchParent });
  const image = join(root, 'packed.ext4');
  const size = await packExt4(tarball, image, host, ctx());
  assert.equal(size % MIB, 0);
  assert.match(debugfs('stat /etc/shadow', image), /Mode:\s+0640[\s\S]*User:\s+0\s+Group:\s+42/);
  assert.match(debugfs('stat /root', image), /Type: directory\s+Mode:\s+0700[\s\S]*User:\s+0\s+Group:\s+0/);
  assert.match(debugfs('stat /passwd', image), /Mode:\s+04755[\s\S]*Links: 2/);
  assert.match(debugfs('stat /masked.service', image), /Fast link dest: "\/dev\/null"/);
  assert.match(debugfs('ea_list /ping', image), /security\.capability \(20\) = 01 00 00 02 00 20 00 00/);
  assert.match(debugfs('stat /dev/null', image), /Type: character special\s+Mode:\s+0666[\s\S]*Device major\/minor number: 01:03/);
  assert.match(debugfs('stats', image), /Block size:\s+4096/);
  execFileSync('e2fsck', ['-fn', image], { stdio: 'ignore' });
  assert.deepEqual(readdirSync(scratchParent), [], 'the scratch mount point is gone');
  assert.deepEqual(
    readdirSync(root).filter((f) => f.endsWith('.devices')),
    [],
    'the debugfs script is removed',
  );
});
