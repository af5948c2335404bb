import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { RpcClient } from '../../src/rpc/client.js';
import { BangerError } from '../../src/rpc/errors.js';
import type { DaemonEvent, DaemonEventKind, VmInfo, VmStatsInfo } from '../../src/rpc/methods.js';
import { BangerWorld, waitFor } from './harness.js';

/**
 * daemon.events over a real daemon and the CLI's own client: VMs created
 * without booting (a registered image on an imported stand-in kernel, so no
 * download and no VMM), changed and deleted by the CLI, each step seen by
 * subscribers as it happens. Booted VMs, stats and ports are in
 * test/e2e/stats-ports.test.ts.
 */
describe('daemon.events on a real daemon', () => {
  let world: BangerWorld;
  before(async () => {
    world = new BangerWorld();
    // Any ELF passes for a vmlinux at import (nothing boots here), and a tiny ext4 for the image.
    assert.equal((await world.run(['kernel', 'import', 'stand-in', '--kernel', process.execPath], { timeoutMs: 120_000 })).code, 0);
    const tree = join(world.root, 'tiny-root');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'tiny\n');
    const rootfs = join(world.root, 'tiny.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs, '16M'], { stdio: 'pipe' });
    await world.json(['image', 'register', 'tiny', '--rootfs', rootfs, '--kernel', 'stand-in']);
  });
  after(() => {
    world.close();
  });

  /** A subscription on a connection of its own; `until` waits for an event matching `match`. */
  async function subscribe(kinds?: DaemonEventKind[]): Promise<{
    events: DaemonEvent[];
    until: (match: (event: DaemonEvent) => boolean) => Promise<DaemonEvent>;
    stop: () => Promise<void>;
    done: Promise<void>;
    client: RpcClient;
  }> {
    const client = await RpcClient.connect(world.layout.socketPath);
    const controller = new AbortController();
    const events: DaemonEvent[] = [];
    const done = client.subscribe((event) => events.push(event), { signal: controller.signal, ...(kinds === undefined ? {} : { kinds }) });
    done.catch(() => undefined);
    return {
      events,
      client,
      done,
      until: async (match) => {
        await waitFor('a daemon event', () => events.some(match), 60_000);
        const found = events.find(match);
        assert.ok(found !== undefined);
        return found;
      },
      stop: async () => {
        controller.abort();
        await done;
        client.close();
      },
    };
  }

  const changedTo = (name: string, state: VmInfo['state']) => (event: DaemonEvent) =>
    event.kind === 'vm.changed' && event.vm.name === name && event.vm.state === state;

  test('create, set and delete are seen as they happen; kinds filter; a late subscriber starts from a snapshot', async () => {
    const all = await subscribe();
    const deletions = await subscribe(['vm.deleted']);

    await world.json<VmInfo>(['vm', 'create', '--name', 'ev', '--image', 'tiny', '--no-start'], { timeoutMs: 120_000 });
    await all.until(changedTo('ev', 'creating'));
    await all.until(changedTo('ev', 'created'));

    const late = await subscribe();
    const snapshot = await late.until((event) => event.kind === 'vm.changed' && event.vm.name === 'ev');
    assert.ok(snapshot.kind === 'vm.changed');
    assert.equal(snapshot.vm.state, 'created', 'the snapshot says how the VM is now');
    assert.equal(snapshot.vm.stats, null);

    await world.json<VmInfo>(['vm', 'set', 'ev', '--vcpu', '2']);
    const set = await all.until((event) => event.kind === 'vm.changed' && event.vm.name === 'ev' && event.vm.spec.vcpu === 2);
    assert.ok(set.kind === 'vm.changed');

    const { stats } = await world.json<{ stats: VmStatsInfo[] }>(['vm', 'stats', 'ev']);
    assert.deepEqual(
      stats.map((s) => [s.vm, s.state, s.latest, s.history]),
      [['ev', 'created', null, []]],
      'a VM that is not running has no samples',
    );

    await world.json<VmInfo>(['vm', 'delete', 'ev']);
    const deleted = await all.until((event) => event.kind === 'vm.deleted');
    assert.ok(deleted.kind === 'vm.deleted');
    assert.equal(deleted.vm.name, 'ev');
    await deletions.until((event) => event.kind === 'vm.deleted');
    assert.deepEqual(
      deletions.events.map((e) => e.kind),
      ['vm.deleted'],
      'a vm.deleted-only subscriber got nothing else',
    );
    const order = all.events.filter((e) => e.vm.name === 'ev').map((e) => (e.kind === 'vm.changed' ? e.vm.state : e.kind));
    assert.deepEqual(order.slice(0, 2), ['creating', 'created']);
    assert.equal(order.at(-1), 'vm.deleted');

    for (const sub of [all, deletions, late]) await sub.stop();
    // Cancelled subscriptions are no longer in flight: only this ping is.
    const probe = await RpcClient.connect(world.layout.socketPath);
    await waitFor('the subscriptions to end', async () => (await probe.call('ping', {})).inFlight === 1);
    probe.close();
  });

  test('`daemon stop` ends open subscriptions at once, telling their clients the daemon is shutting down', async () => {
    const sub = await subscribe();
    await waitFor('the subscription to be served', async () => (await sub.client.call('ping', {})).inFlight === 2);
    const stop = await world.run(['daemon', 'stop']);
    assert.equal(stop.code, 0, stop.stderr);
    await assert.rejects(sub.done, (error: unknown) => error instanceof BangerError && error.code === 'ERR_DAEMON_SHUTTING_DOWN');
    assert.equal(
      world.logLines().some((line) => line.msg === 'shutdown grace period over, cancelling requests'),
      false,
      'the shutdown did not wait for the subscription',
    );
    sub.client.close();
  });
});
