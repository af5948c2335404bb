import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import { VM_HANDLES } from '../../src/config/filenames.js';
import type { VmInfo } from '../../src/rpc/methods.js';
import type { BangerWorld } from '../integration/harness.js';
import { collect, processAlive, waitFor } from '../integration/harness.js';
import { assertNoLeaks } from '../helpers/leaks.js';
import { createVm, faultWorld, listVms, pullImage, qemuOf, scrub } from './common.js';

/**
 * Faults from outside banger: its VMM killed (while running, while
 * stopping), the disk filling up while a VM's disks are built, a guest that
 * cannot boot, a VM's handles.json corrupted, the store's WAL truncated. Each case ends with
 * the leak check (test/helpers/leaks.ts). One world (as root, its own bridge
 * and subnet) for the file; each case cleans up after itself.
 */
describe('host faults: VMM killed, disk full, guest that cannot boot, corrupt handles, torn WAL', { timeout: 900_000 }, () => {
  let world: BangerWorld;
  before(async () => {
    world = await faultWorld();
    await pullImage(world);
  });
  afterEach(async () => {
    await scrub(world);
  });
  after(() => {
    world.close();
    world.removeNftTables();
  });

  const storeRow = (name: string): { state: string } | undefined => {
    const db = new Database(world.layout.storePath, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT state FROM vms WHERE name = ?').get(name) as { state: string } | undefined;
    } finally {
      db.close();
    }
  };

  test('kill -9 of QEMU while the VM runs: the VM is shown stopped, its host side is cleaned up, and it starts again', async () => {
    const vm = await createVm(world, 'qrun');
    assert.ok(vm.pid !== null);
    process.kill(vm.pid, 'SIGKILL');
    await waitFor('qemu to die', () => !processAlive(vm.pid ?? 0));

    const shown = await world.json<VmInfo>(['vm', 'show', 'qrun']);
    assert.equal(shown.state, 'stopped');
    assert.match(shown.lastError ?? '', /exited/, 'the VM exited on its own, and says so');
    await assertNoLeaks(world, 'after QEMU was killed');
    // Its disks were left unclean; the guest replays the journal.
    assert.equal((await world.json<VmInfo>(['vm', 'start', 'qrun'], { timeoutMs: 300_000 })).state, 'running');
    const exec = await world.run(['vm', 'exec', 'qrun', '--', 'true']);
    assert.equal(exec.code, 0, exec.stderr);
    await world.json<VmInfo>(['vm', 'delete', 'qrun']);
    await assertNoLeaks(world, 'at the end');
  });

  test('kill -9 of QEMU while the VM is stopping: the stop completes, the VM is stopped, nothing leaks', async () => {
    const vm = await createVm(world, 'qstop');
    // A guest that takes its time to power off (its poweroff command hangs), so the stop is surely in progress when QEMU dies.
    const slow = await world.run([
      'vm',
      'exec',
      'qstop',
      '--',
      'sh',
      '-c',
      'printf "#!/bin/sh\\nexec sleep 600\\n" > /run/slow-poweroff && chmod 755 /run/slow-poweroff && mount --bind /run/slow-poweroff /banger/busybox',
    ]);
    assert.equal(slow.code, 0, slow.stderr);
    const stop = collect(world.spawn(['vm', 'stop', 'qstop', '--json']), 300_000);
    await waitFor('the VM to be stopping', () => storeRow('qstop')?.state === 'stopping', 60_000);
    assert.ok(vm.pid !== null);
    process.kill(vm.pid, 'SIGKILL');

    const stopped = await stop;
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.equal((JSON.parse(stopped.stdout) as VmInfo).state, 'stopped');
    assert.deepEqual(qemuOf(world, vm.id), []);
    await assertNoLeaks(world, 'after QEMU was killed mid-stop');
    assert.equal((await world.json<VmInfo>(['vm', 'start', 'qstop'], { timeoutMs: 300_000 })).state, 'running');
    await world.json<VmInfo>(['vm', 'delete', 'qstop']);
    await assertNoLeaks(world, 'at the end');
  });

  test('the disk fills up while a VM’s disks are built: the create fails with an error code and leaves nothing', async () => {
    // The VMs dir on a tmpfs with room for the upper disk (~8 MiB with its staging tree) but not the work disk too.
    mkdirSync(world.layout.vmsDir, { recursive: true, mode: 0o700 });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=10M,mode=0700', 'tmpfs', world.layout.vmsDir]);
    try {
      const result = await world.run(['vm', 'create', '--name', 'full', '--no-start'], { timeoutMs: 300_000 });
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /error\[ERR_[A-Z_]+\]/, 'a clear error code');
      assert.match(result.stderr, /No space left on device|ENOSPC/i, 'saying the disk is full');
      assert.equal(
        (await listVms(world)).find((vm) => vm.name === 'full'),
        undefined,
        'no VM row',
      );
      await assertNoLeaks(world, 'after the failed create');
      assert.deepEqual(readdirSync(world.layout.vmsDir), [], 'no VM dir');
    } finally {
      spawnSync('umount', ['-l', world.layout.vmsDir]);
    }
    // With room again, the name is free and a create works.
    const vm = await createVm(world, 'full', { noStart: true });
    await world.json<VmInfo>(['vm', 'delete', vm.name]);
    await assertNoLeaks(world, 'at the end');
  });

  test('a guest that cannot boot: a failed start leaves a stopped VM and nothing else, a failed create leaves nothing', async () => {
    // An image without an init: with --init systemd the guest cannot hand over and powers off.
    const tree = join(world.root, 'broken-root');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'broken\n');
    const rootfs = join(world.root, 'broken.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs, '16M'], { stdio: 'pipe' });
    await world.json(['image', 'register', 'broken', '--rootfs', rootfs, '--kernel', 'debian-bookworm-cloud']);

    await createVm(world, 'noboot', { noStart: true, extra: ['--image', 'broken', '--init', 'systemd'] });
    const start = await world.run(['vm', 'start', 'noboot'], { timeoutMs: 300_000 });
    assert.equal(start.code, 1);
    assert.match(start.stderr, /error\[ERR_VM_START_FAILED\]/);
    assert.equal((await world.json<VmInfo>(['vm', 'show', 'noboot'])).state, 'stopped');
    await assertNoLeaks(world, 'after the failed start');

    const create = await world.run(['vm', 'create', '--name', 'nocreate', '--image', 'broken', '--init', 'systemd'], { timeoutMs: 300_000 });
    assert.equal(create.code, 1);
    assert.match(create.stderr, /error\[ERR_VM_START_FAILED\]/);
    assert.equal(
      (await listVms(world)).find((vm) => vm.name === 'nocreate'),
      undefined,
    );
    await assertNoLeaks(world, 'after the failed create');
    await world.json<VmInfo>(['vm', 'delete', 'noboot']);
    await world.json(['image', 'delete', 'broken']);
    await assertNoLeaks(world, 'at the end');
  });

  test('a corrupt handles.json and a daemon restart: the running VM stays managed, and vm start never boots a second QEMU', async () => {
    const vm = await createVm(world, 'hdl');
    assert.ok(vm.pid !== null);
    const handles = join(world.layout.vmsDir, vm.id, VM_HANDLES);
    const original = readFileSync(handles);
    /** VMMs the daemons of this world launched for the VM (each logs "vmm started"). */
    const launches = (): number => world.logLines().filter((line) => line.msg === 'vmm started' && line.vm === 'hdl').length;
    for (const [how, corrupt] of [
      ['truncated', original.subarray(0, Math.floor(original.length / 2))],
      ['garbage', randomBytes(original.length)],
    ] as const) {
      writeFileSync(handles, corrupt);
      await world.killDaemon();
      const shown = await world.json<VmInfo>(['vm', 'show', 'hdl']);
      // What a user does with a VM shown stopped: start it. It must be refused, without even trying to boot a second
      // QEMU on the running VM's disks (QEMU's own image locking may stop that one; other VMMs have none).
      const launchedBefore = launches();
      const start = await world.run(['vm', 'start', 'hdl'], { timeoutMs: 300_000 });
      assert.equal(launches(), launchedBefore, `${how} handles.json: vm start launched no second VMM (it said: ${start.stderr.trim()})`);
      assert.match(start.stderr, /error\[ERR_VM_RUNNING\]/, 'vm start is refused: the VM runs');
      assert.deepEqual(qemuOf(world, vm.id), [vm.pid], `${how} handles.json: one QEMU, the original, runs on the VM's disks`);
      assert.equal(shown.state, 'running', `${how} handles.json: the VM is still managed as running (last error: ${shown.lastError ?? 'none'})`);
      assert.equal(shown.pid, vm.pid);
      const exec = await world.run(['vm', 'exec', 'hdl', '--', 'true']);
      assert.equal(exec.code, 0, exec.stderr);
      await assertNoLeaks(world, `${how} handles.json, after the restart`);
    }
    await world.json<VmInfo>(['vm', 'delete', 'hdl']);
    assert.deepEqual(qemuOf(world, vm.id), [], 'delete ends the VMM');
    await assertNoLeaks(world, 'at the end');
  });

  // With synchronous=NORMAL a crash of the machine may lose any tail of the WAL: a create's last commit only, or all of
  // it (its row then vanishes while its disks and host key pin are on disk, and its VMM may be running).
  for (const tear of ['the last commit of a create', 'the whole create of a stopped VM', 'the whole create of a running VM'] as const) {
    test(`a WAL truncated after kill -9, losing ${tear}: the daemon serves, the store is consistent, nothing leaks`, async () => {
      await createVm(world, 'keep', { noStart: true });
      const wal = `${world.layout.storePath}-wal`;
      const walSize = (): number => (existsSync(wal) ? statSync(wal).size : 0);
      await world.stopDaemon(); // checkpoints: everything so far is in state.db
      await world.startDaemon();
      const before = walSize(); // what the daemon wrote starting up, at a frame boundary
      await createVm(world, 'lost', { noStart: tear !== 'the whole create of a running VM' }); // its writes are only in the WAL
      await world.killDaemon();
      // The WAL: a 32-byte header, then frames of 24 bytes + a page.
      const header = Buffer.alloc(32);
      const fd = openSync(wal, 'r');
      readSync(fd, header, 0, 32, 0);
      closeSync(fd);
      const frame = 24 + header.readUInt32BE(8);
      const frames = Math.floor((walSize() - 32) / frame);
      assert.ok(frames >= 1, `the WAL holds the create (${walSize()} bytes)`);
      truncateSync(wal, tear === 'the last commit of a create' ? 32 + (frames - 1) * frame + 100 : Math.max(before, 32) + 100);

      const vms = await listVms(world);
      assert.ok(
        vms.some((v) => v.name === 'keep'),
        'what was checkpointed is kept',
      );
      if (tear !== 'the last commit of a create') assert.ok(!vms.some((v) => v.name === 'lost'), 'the torn WAL lost the create, row and all');
      const db = new Database(world.layout.storePath, { readonly: true, fileMustExist: true });
      try {
        assert.deepEqual(db.pragma('integrity_check', { simple: true }), 'ok');
        assert.deepEqual(db.pragma('foreign_key_check'), []);
      } finally {
        db.close();
      }
      await assertNoLeaks(world, `after the WAL lost ${tear}`);
      // A create the store lost frees its name (a row that survived has been held by the leak check to a whole VM).
      if (!vms.some((v) => v.name === 'lost')) {
        const again = await createVm(world, 'lost', { noStart: true });
        assert.equal(again.name, 'lost', 'the store takes writes, and the name of the create it lost is free');
      }
      for (const name of ['lost', 'keep']) await world.json<VmInfo>(['vm', 'delete', name]);
      await assertNoLeaks(world, 'at the end');
    });
  }
});
