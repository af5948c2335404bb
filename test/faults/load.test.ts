import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import type { VmInfo } from '../../src/rpc/methods.js';
import type { BangerWorld, CliResult } from '../integration/harness.js';
import { assertNoLeaks } from '../helpers/leaks.js';
import { daemonLogText, faultWorld, listVms, pullImage, VM_MEMORY } from './common.js';

const CREATES = 20;
const RUNS = 8;
/** What a database error looks like in a CLI's output or the daemon log. */
const DB_ERROR = /SQLITE_[A-Z_]+|database is locked|database table is locked|database disk image is malformed/i;

/**
 * Many CLIs at once against one world, from a cold start (no daemon: they
 * race to start it): 20 `vm create --no-start` and 8 `vm run --rm -- true`,
 * each its own process. Unique names, slots and addresses, no database
 * errors anywhere, every command succeeds or fails with a clear code, and
 * nothing is left after deleting the created VMs. One world (as root, its
 * own bridge and subnet).
 */
describe('load: 20 concurrent creates and 8 concurrent vm run --rm', { timeout: 600_000 }, () => {
  let world: BangerWorld;
  before(async () => {
    world = await faultWorld();
    await pullImage(world);
    await world.stopDaemon();
  });
  after(() => {
    world.close();
    world.removeNftTables();
  });

  /** Every command either succeeded or failed with a clear error code (never an internal error). */
  const assertClearOutcome = (results: readonly CliResult[], what: string): void => {
    results.forEach((result, i) => {
      assert.doesNotMatch(`${result.stdout}\n${result.stderr}`, DB_ERROR, `${what} #${i}: no database error`);
      if (result.code !== 0)
        assert.match(result.stderr, /error\[ERR_(?!INTERNAL\])[A-Z_]+\]/, `${what} #${i} failed without a clear error code:\n${result.stderr}`);
    });
  };

  test('unique names, slots and addresses; no database errors; nothing left behind', async () => {
    const logStart = daemonLogText(world).length;
    const readyBefore = world.daemonPids().length;
    const [created, ran] = await Promise.all([
      Promise.all(Array.from({ length: CREATES }, () => world.run(['vm', 'create', '--no-start', '--memory', VM_MEMORY, '--json'], { timeoutMs: 600_000 }))),
      Promise.all(Array.from({ length: RUNS }, () => world.run(['vm', 'run', '--rm', '--memory', VM_MEMORY, '--', 'true'], { timeoutMs: 600_000 }))),
    ]);
    assertClearOutcome(created, 'vm create');
    assertClearOutcome(ran, 'vm run');
    // Nothing here has a reason to fail (slots, memory and disk are plentiful), so every command succeeds. A run whose
    // VM shared an address with another would also fail: its connection verifies the host key pinned for its own VM.
    assert.deepEqual(
      [...created, ...ran].filter((r) => r.code !== 0).map((r) => r.stderr.trim().split('\n').at(-2) ?? r.stderr),
      [],
      'every command succeeded',
    );
    assert.equal(world.daemonPids().length - readyBefore, 1, 'the racing CLIs started one daemon');

    const vms = created.map((result) => JSON.parse(result.stdout) as VmInfo);
    assert.equal(new Set(vms.map((vm) => vm.id)).size, CREATES, 'unique ids');
    assert.equal(new Set(vms.map((vm) => vm.name)).size, CREATES, 'unique names');
    assert.equal(new Set(vms.map((vm) => vm.ip)).size, CREATES, 'unique addresses');
    const db = new Database(world.layout.storePath, { readonly: true, fileMustExist: true });
    const slots = db.prepare('SELECT slot FROM vms').all() as { slot: number }[];
    db.close();
    assert.equal(new Set(slots.map((row) => row.slot)).size, CREATES, 'unique slots, and no row left by the --rm runs');
    const listed = await listVms(world);
    assert.deepEqual(listed.map((vm) => vm.name).sort(), vms.map((vm) => vm.name).sort(), 'the created VMs, and only them');
    for (const vm of listed) assert.equal(vm.state, 'created');
    await assertNoLeaks(world, 'after the load');

    const deleted = await Promise.all(vms.map((vm) => world.run(['vm', 'delete', vm.name])));
    assertClearOutcome(deleted, 'vm delete');
    for (const result of deleted) assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await listVms(world), []);
    assert.doesNotMatch(daemonLogText(world).slice(logStart), DB_ERROR, 'no database error in the daemon log');
    await assertNoLeaks(world, 'after deleting the created VMs');
  });
});
