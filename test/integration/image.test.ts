import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import type { ImageInfo } from '../../src/rpc/methods.js';
import { MASKED_UNITS } from '../../src/services/image/rootfs-builder.js';
import { BangerWorld } from './harness.js';

/** Image pull builds a real Debian root with mmdebstrap on this host; register/promote/delete around it. */
describe('images', () => {
  let world: BangerWorld;
  let bookworm: ImageInfo;
  before(() => {
    world = new BangerWorld({ sharedDownloads: true });
  });
  after(() => {
    world.close();
  });

  test('pulling the catalog image builds it and pulls its kernel', async () => {
    const result = await world.json<{ image: ImageInfo; pulled: boolean }>(['image', 'pull', 'debian-bookworm'], { timeoutMs: 900_000 });
    assert.equal(result.pulled, true);
    bookworm = result.image;
    assert.equal(bookworm.kernel.name, 'debian-bookworm-cloud');
    assert.equal(bookworm.managed, true);
    assert.ok(existsSync(bookworm.rootfs));
  });

  const debugfs = (request: string): string =>
    execFileSync('debugfs', ['-R', request, bookworm.rootfs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const ls = (path: string): string => debugfs(`ls -l ${path}`);
  const cat = (path: string): string => debugfs(`cat ${path}`);
  const stat = (path: string): string => debugfs(`stat ${path}`);

  test('the image is a shareable Debian root: sshd, git, curl, systemd, no baked host keys, hostname, masked units', () => {
    for (const binary of ['sshd', 'git', 'curl']) assert.match(ls('/usr/bin') + ls('/usr/sbin'), new RegExp(`\\s${binary}\\s*$`, 'm'), binary);
    assert.match(ls('/usr/lib/systemd'), /\ssystemd\s*$/m);
    assert.doesNotMatch(ls('/etc/ssh'), /ssh_host_/);
    assert.match(cat('/usr/lib/os-release'), /VERSION_CODENAME=bookworm/);
    assert.equal(cat('/etc/hostname'), 'banger\n');
    assert.equal(cat('/etc/machine-id'), '');
    for (const unit of MASKED_UNITS) assert.match(stat(`/etc/systemd/system/${unit}`), /Fast link dest: "\/dev\/null"/, unit);
  });

  test('owners, modes and device nodes are as Debian made them (the same path builds as root and as a user)', () => {
    assert.match(stat('/etc/shadow'), /Mode:\s+0640[\s\S]*User:\s+0\s+Group:\s+42\s/);
    assert.match(stat('/usr/bin/passwd'), /Mode:\s+04755[\s\S]*User:\s+0\s+Group:\s+0\s/);
    assert.match(stat('/root'), /Type: directory\s+Mode:\s+0700[\s\S]*User:\s+0\s+Group:\s+0\s/);
    assert.match(stat('/var/cache/apt/archives'), /Mode:\s+0755[\s\S]*User:\s+0\s/);
    assert.match(stat('/dev/null'), /Type: character special\s+Mode:\s+0666[\s\S]*Device major\/minor number: 01:03/);
    execFileSync('e2fsck', ['-fn', bookworm.rootfs], { stdio: 'ignore' });
  });

  test('list, show and catalog agree', async () => {
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => i.name),
      ['debian-bookworm'],
    );
    assert.equal((await world.json<ImageInfo>(['image', 'show', 'deb'])).id, bookworm.id);
    const { entries } = await world.json<{ entries: { name: string; kernel: string; pulled: boolean }[] }>(['image', 'catalog']);
    assert.deepEqual(
      entries.map((e) => [e.name, e.kernel, e.pulled]),
      [
        ['debian-bookworm', 'debian-bookworm-cloud', true],
        ['debian-bookworm-dev', 'debian-bookworm-cloud', false],
      ],
    );
  });

  test('register references a file in place; promote copies it in; delete leaves a registered file alone', async () => {
    const tree = join(world.root, 'tiny-root');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'tiny\n');
    const rootfs = join(world.root, 'tiny.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs, '16M'], { stdio: 'pipe' });

    const registered = await world.json<ImageInfo>(['image', 'register', 'tiny', '--rootfs', rootfs, '--kernel', 'debian-bookworm-cloud']);
    assert.equal(registered.managed, false);
    assert.equal(registered.rootfs, rootfs);

    const promoted = await world.json<ImageInfo>(['image', 'promote', 'tiny']);
    assert.equal(promoted.managed, true);
    assert.notEqual(promoted.rootfs, rootfs);
    assert.ok(existsSync(promoted.rootfs));

    const deleted = await world.json<ImageInfo>(['image', 'delete', 'tiny']);
    assert.equal(deleted.id, registered.id);
    assert.equal(existsSync(promoted.rootfs), false, 'the managed copy is removed');
    assert.equal(existsSync(rootfs), true, "the user's own file stays");
  });

  test('bad registrations are refused with nothing recorded', async () => {
    const notExt4 = join(world.root, 'not-ext4');
    writeFileSync(notExt4, Buffer.alloc(4096));
    const bad = await world.run(['image', 'register', 'bad', '--rootfs', notExt4, '--kernel', 'debian-bookworm-cloud']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /error\[ERR_INVALID_ARGUMENT\]: .*not-ext4 is not an ext4 filesystem image/);
    const noKernel = await world.run(['image', 'register', 'bad', '--rootfs', bookworm.rootfs, '--kernel', 'nope']);
    assert.equal(noKernel.code, 1);
    assert.match(noKernel.stderr, /error\[ERR_NOT_FOUND\]: no kernel matches "nope"/);
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => i.name),
      ['debian-bookworm'],
    );
  });

  test('delete is refused while a VM uses the image; the kernel is refused while the image uses it', async () => {
    const db = new Database(world.layout.storePath);
    const now = new Date().toISOString();
    db.prepare("INSERT INTO vms (id, name, state, image_id, slot, created_at, updated_at) VALUES ('vm1', 'box', 'stopped', ?, 1, ?, ?)").run(
      bookworm.id,
      now,
      now,
    );
    const refused = await world.run(['image', 'delete', 'debian-bookworm']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error\[ERR_IN_USE\]: image debian-bookworm is used by VM box/);
    db.prepare("DELETE FROM vms WHERE id = 'vm1'").run();
    db.close();
    const kernelRefused = await world.run(['kernel', 'delete', 'debian-bookworm-cloud']);
    assert.match(kernelRefused.stderr, /ERR_IN_USE/);
  });
});
