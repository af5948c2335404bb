import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { dependsFromModinfo, indexModuleTree, moduleNameOf, readModinfo, resolveLoadOrder } from './kernel-modules.js';

const root = mkdtempSync(join(tmpdir(), 'banger-modules-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A minimal relocatable ELF whose only real section is .modinfo. */
function koWith(modinfo: string): Buffer {
  const shstrtab = Buffer.from('\0.modinfo\0.shstrtab\0');
  const info = Buffer.from(modinfo);
  const infoOffset = 64;
  const shstrOffset = infoOffset + info.length;
  const shoff = shstrOffset + shstrtab.length;
  const elf = Buffer.alloc(shoff + 3 * 64);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2;
  elf[5] = 1;
  elf.writeBigUInt64LE(BigInt(shoff), 0x28);
  elf.writeUInt16LE(64, 0x3a);
  elf.writeUInt16LE(3, 0x3c);
  elf.writeUInt16LE(2, 0x3e);
  info.copy(elf, infoOffset);
  shstrtab.copy(elf, shstrOffset);
  const section = (index: number, name: number, offset: number, size: number): void => {
    const base = shoff + index * 64;
    elf.writeUInt32LE(name, base);
    elf.writeBigUInt64LE(BigInt(offset), base + 0x18);
    elf.writeBigUInt64LE(BigInt(size), base + 0x20);
  };
  section(1, 1, infoOffset, info.length);
  section(2, 10, shstrOffset, shstrtab.length);
  return elf;
}

test('modinfo is read from the .modinfo section', () => {
  const info = readModinfo(koWith('license=GPL\0depends=virtio,virtio_ring\0alias=virtio:d00000001v*\0alias=x\0name=virtio_net\0'));
  assert.deepEqual(info.get('depends'), ['virtio,virtio_ring']);
  assert.deepEqual(info.get('alias'), ['virtio:d00000001v*', 'x']);
  assert.deepEqual(dependsFromModinfo(info), ['virtio', 'virtio_ring']);
  assert.deepEqual(dependsFromModinfo(readModinfo(koWith('depends=\0name=virtio_ring\0'))), []);
});

test('module file names map to module names', () => {
  assert.equal(moduleNameOf('/x/virtio-rng.ko'), 'virtio_rng');
  const tree = join(root, 'lib', 'modules', '6.1.0-test');
  mkdirSync(join(tree, 'kernel', 'drivers'), { recursive: true });
  writeFileSync(join(tree, 'kernel', 'drivers', 'virtio_blk.ko'), koWith('depends=virtio\0'));
  writeFileSync(join(tree, 'modules.dep'), '');
  assert.deepEqual([...indexModuleTree(tree).keys()], ['virtio_blk']);
});

const DEPENDS: Record<string, string[]> = {
  virtio_ring: [],
  virtio: ['virtio_ring'],
  virtio_mmio: ['virtio', 'virtio_ring'],
  virtio_blk: ['virtio', 'virtio_ring'],
  failover: [],
  net_failover: ['failover'],
  virtio_net: ['virtio_ring', 'virtio', 'net_failover'],
  overlay: [],
};
const available = new Map(Object.keys(DEPENDS).map((name) => [name, name]));

test('load order puts every dependency before its users, each module once', () => {
  const order = resolveLoadOrder(['virtio_mmio', 'virtio_blk', 'virtio_net', 'overlay'], available, (path) => DEPENDS[path] ?? []).map((m) => m.name);
  assert.deepEqual(order, ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'failover', 'net_failover', 'virtio_net', 'overlay']);
});

test('a missing module or a cycle is an error that says which', () => {
  assert.throws(
    () => resolveLoadOrder(['virtio_net'], new Map([['virtio_net', 'virtio_net']]), (p) => DEPENDS[p] ?? []),
    (e: unknown) => e instanceof BangerError && e.message.includes('kernel module virtio_ring not found (needed by virtio_net)'),
  );
  const cyclic: Record<string, string[]> = { a: ['b'], b: ['a'] };
  assert.throws(
    () =>
      resolveLoadOrder(
        ['a'],
        new Map([
          ['a', 'a'],
          ['b', 'b'],
        ]),
        (p) => cyclic[p] ?? [],
      ),
    /cycle: a -> b -> a/,
  );
});
