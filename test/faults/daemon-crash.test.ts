import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import { STAGING_PREFIX, VM_UPPER_DISK, VM_WORK_DISK } from '../../src/config/filenames.js';
import { tapName } from '../../src/root-helper/policy.js';
import type { ImageInfo, VmInfo } from '../../src/rpc/methods.js';
import { FAILPOINTS } from '../../src/services/failpoints.js';
import type { BangerWorld } from '../integration/harness.js';
import { waitFor } from '../integration/harness.js';
import { assertNoLeaks } from '../helpers/leaks.js';
import { crashAt, createVm, faultWorld, listVms, pullImage, qemuOf, scrub, VM_MEMORY, waitUntilExecWorks } from './common.js';

/**
 * kill -9 of bangerd at each stage of an operation, by failpoint (the daemon
 * SIGKILLs itself there; see src/services/failpoints.ts), then the next CLI
 * command starts a fresh daemon, which must reconcile. What must hold after
 * every crash: every VM banger can still manage is kept (a VM whose VMM
 * survived stays running and usable), an interrupted create leaves either
 * nothing or a whole stopped VM that starts, and nothing leaks (see
 * test/helpers/leaks.ts). One world (as root, its own bridge and subnet)
 * for the file; each case cleans up after itself.
 */
describe('kill -9 of bangerd at each failpoint', { timeout: 900_000 }, () => {
  let world: BangerWorld;
  before(async () => {
    world = await faultWorld();
  });
  afterEach(async () => {
    await scrub(world);
  });
  after(() => {
    world.close();
    world.removeNftTables();
  });

  /** The VM's row as the store holds it while no daemon runs. */
  const rowOf = (name: string): { id: string; state: string } | undefined => {
    const db = new Database(world.layout.storePath, { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT id, state FROM vms WHERE name = ?').get(name) as { id: string; state: string } | undefined;
    } finally {
      db.close();
    }
  };

  /**
   * After an interrupted create, the next command's daemon shows either no
   * such VM (its name is free again: creating it anew works) or a whole VM
   * at rest that boots and answers. Leak-checked at each step.
   */
  const assertCreateRecovered = async (name: string, context: string): Promise<void> => {
    const kept = (await listVms(world)).find((vm) => vm.name === name);
    await assertNoLeaks(world, `${context}, after the restart`);
    if (kept === undefined) {
      const again = await createVm(world, name, { noStart: true });
      assert.equal(again.name, name, 'the name of the interrupted create is free again');
      await world.json<VmInfo>(['vm', 'delete', name]);
    } else {
      assert.ok(kept.state === 'stopped' || kept.state === 'created', `a kept VM is at rest, not '${kept.state}'`);
      assert.equal((await world.json<VmInfo>(['vm', 'start', name], { timeoutMs: 300_000 })).state, 'running', 'the kept VM starts');
      const exec = await world.run(['vm', 'exec', name, '--', 'cat', '/etc/hostname']);
      assert.equal(exec.code, 0, exec.stderr);
      assert.equal(exec.stdout.trim(), name);
      await world.json<VmInfo>(['vm', 'delete', name]);
    }
    await assertNoLeaks(world, `${context}, at the end`);
  };

  test('image.pull: the half-built image is swept, no image row is left, and the next pull works', async () => {
    await crashAt(world, FAILPOINTS.imagePull, ['image', 'pull', 'debian-bookworm']);
    const staged = readdirSync(world.layout.imagesDir).filter((name) => name.startsWith(STAGING_PREFIX));
    assert.equal(staged.length, 1, 'the crash left the build in its staging dir');
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(images, [], 'no image row for the unfinished pull');
    await assertNoLeaks(world, 'after the crashed image pull');
    await pullImage(world);
    await assertNoLeaks(world, 'after pulling again');
  });

  test('create.disks (row reserved, disks half built): the create leaves nothing, or a whole VM', async () => {
    await crashAt(world, FAILPOINTS.createDisks, ['vm', 'create', '--name', 'cdisks', '--memory', VM_MEMORY]);
    const row = rowOf('cdisks');
    assert.ok(row !== undefined, 'the crash came after the row was reserved');
    const dir = join(world.layout.vmsDir, row.id);
    assert.ok(existsSync(join(dir, VM_UPPER_DISK)) && !existsSync(join(dir, VM_WORK_DISK)), 'the crash came between the two disks');
    await assertCreateRecovered('cdisks', 'create.disks');
  });

  test('start.network (tap attached, no VMM): the create leaves nothing, or a whole stopped VM', async () => {
    await crashAt(world, FAILPOINTS.startNetwork, ['vm', 'create', '--name', 'cnet', '--memory', VM_MEMORY]);
    const row = rowOf('cnet');
    assert.ok(row !== undefined);
    assert.deepEqual(qemuOf(world, row.id), [], 'no VMM was started');
    await assertCreateRecovered('cnet', 'start.network');
  });

  for (const [failpoint, what] of [
    [FAILPOINTS.startBoot, 'VMM running, handles saved'],
    [FAILPOINTS.startSsh, 'waiting for SSH'],
  ] as const) {
    test(`${failpoint} (${what}): the VM whose VMM survived is kept running and usable, with one VMM`, async () => {
      const name = failpoint === FAILPOINTS.startBoot ? 'cboot' : 'cssh';
      await crashAt(world, failpoint, ['vm', 'create', '--name', name, '--memory', VM_MEMORY]);
      const row = rowOf(name);
      assert.ok(row !== undefined);
      const [pid, ...others] = qemuOf(world, row.id);
      assert.ok(pid !== undefined && others.length === 0, 'the VMM outlived the daemon');

      // The VMM survived, so banger keeps the VM: running, same process, and usable once its guest is up.
      const shown = await world.json<VmInfo>(['vm', 'show', name]);
      assert.equal(shown.state, 'running', `kept running (last error: ${shown.lastError ?? 'none'})`);
      assert.equal(shown.pid, pid, 'the same VMM');
      await waitUntilExecWorks(world, name);
      const start = await world.run(['vm', 'start', name]);
      assert.match(start.stderr, /error\[ERR_VM_RUNNING\]/, 'a second start is refused');
      assert.deepEqual(qemuOf(world, row.id), [pid], 'one VMM on its disks');
      await assertNoLeaks(world, `${failpoint}, after the restart`);

      assert.equal((await world.json<VmInfo>(['vm', 'stop', name], { timeoutMs: 120_000 })).state, 'stopped');
      await world.json<VmInfo>(['vm', 'delete', name]);
      await assertNoLeaks(world, `${failpoint}, at the end`);
    });
  }

  test('a tap half made when the daemon died (created, never attached to the bridge): the next daemon repairs or drops it, and VMs start', async () => {
    if (!world.links().includes(world.bridge ?? '')) await world.json<VmInfo>(['vm', 'delete', (await createVm(world, 'warm')).name]); // the bridge exists
    await world.killDaemon();
    // What a kill -9 between `ip tuntap add` and `ip link set master` (a pool refill in the background) leaves.
    for (const tap of world.links().filter((link) => link !== world.bridge)) execFileSync('ip', ['link', 'del', tap]);
    const half = tapName(world.bridge ?? '', 0);
    execFileSync('ip', ['tuntap', 'add', 'dev', half, 'mode', 'tap', 'user', String(process.getuid?.() ?? 0)]);

    const vm = await createVm(world, 'tapfix');
    assert.equal(vm.state, 'running');
    const exec = await world.run(['vm', 'exec', 'tapfix', '--', 'true']);
    assert.equal(exec.code, 0, exec.stderr);
    await assertNoLeaks(world, 'with the VM running');
    await world.json<VmInfo>(['vm', 'delete', 'tapfix']);
    await assertNoLeaks(world, 'at the end');
  });

  test('stop.shutdown (guest asked to power off): the VM ends stopped, and starts again', async () => {
    const vm = await createVm(world, 'cstop');
    await crashAt(world, FAILPOINTS.stopShutdown, ['vm', 'stop', 'cstop']);
    // The guest was told to power off before the crash: whatever the new daemon first makes of it, it ends stopped.
    await waitFor('the VM to be stopped', async () => (await world.json<VmInfo>(['vm', 'show', 'cstop'])).state === 'stopped', 120_000);
    assert.deepEqual(qemuOf(world, vm.id), [], 'its VMM is gone');
    await assertNoLeaks(world, 'stop.shutdown, after the restart');
    assert.equal((await world.json<VmInfo>(['vm', 'start', 'cstop'], { timeoutMs: 300_000 })).state, 'running');
    const exec = await world.run(['vm', 'exec', 'cstop', '--', 'true']);
    assert.equal(exec.code, 0, exec.stderr);
    await world.json<VmInfo>(['vm', 'delete', 'cstop']);
    await assertNoLeaks(world, 'stop.shutdown, at the end');
  });

  test('delete.cleanup (runtime cleaned, dir and row not removed): the VM is gone, or stopped and deletable', async () => {
    const vm = await createVm(world, 'cdel');
    await crashAt(world, FAILPOINTS.deleteCleanup, ['vm', 'delete', 'cdel']);
    assert.deepEqual(qemuOf(world, vm.id), [], 'the crash came after the VMM was killed');
    assert.ok(existsSync(join(world.layout.vmsDir, vm.id)), 'and before its directory was removed');

    const kept = (await listVms(world)).find((v) => v.name === 'cdel');
    await assertNoLeaks(world, 'delete.cleanup, after the restart');
    if (kept !== undefined) {
      assert.equal(kept.state, 'stopped', 'a VM half deleted is at rest');
      await world.json<VmInfo>(['vm', 'delete', 'cdel']);
    }
    assert.equal(
      (await listVms(world)).find((v) => v.name === 'cdel'),
      undefined,
    );
    await assertNoLeaks(world, 'delete.cleanup, at the end');
  });
});
