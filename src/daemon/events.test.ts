import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test } from 'node:test';

import { pino } from 'pino';

import { fakeVmView } from '../../test/helpers/fake-vm-parts.js';
import { RpcClient } from '../rpc/client.js';
import { BangerError } from '../rpc/errors.js';
import { methods, type DaemonEvent, type MethodKey, type VmInfo } from '../rpc/methods.js';
import { DaemonEventBus } from '../services/stats/event-bus.js';
import type { VmView } from '../services/vm/vm-service.js';
import { withCheckedParams } from './params.js';
import { RpcServer, type DaemonHandlers } from './rpc-server.js';
import { createStatsHandlers } from './stats-handlers.js';
import { StreamHub } from './stream-hub.js';

const dirs: string[] = [];
const servers: RpcServer[] = [];
after(async () => {
  // Every test drained its server (closing its connections); the listening sockets close here.
  await Promise.all(servers.map((server) => server.stopAccepting()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A stopped VM (as the daemon.events handler lists it first). */
const view = (id: string, state: VmView['vm']['state'] = 'stopped'): VmView => fakeVmView(id, { state, alive: false, pid: null, accel: null });

const changed = (id: string, state: VmInfo['state']): { kind: 'vm.changed'; vm: VmInfo } => ({
  kind: 'vm.changed',
  vm: { id, name: `vm-${id}`, state } as VmInfo,
});

/**
 * daemon.events end to end in one process: a real RpcServer on a unix socket
 * serving the real events handler over a real bus, and the CLI's RpcClient
 * subscribing. `list` is what the handler's snapshot reads.
 */
async function rig(list: () => Promise<VmView[]> = () => Promise.resolve([])): Promise<{
  bus: DaemonEventBus;
  server: RpcServer;
  client: RpcClient;
  logs: Record<string, unknown>[];
}> {
  const dir = mkdtempSync(join(tmpdir(), 'banger-events-'));
  dirs.push(dir);
  const logs: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString('utf8').split('\n')) if (line !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  const bus = new DaemonEventBus();
  const stats = createStatsHandlers({
    vms: { list, show: () => Promise.reject(new Error('unused')), guest: () => Promise.reject(new Error('unused')) },
    stats: { stats: () => Promise.resolve([]), latest: () => null },
    events: bus,
  });
  const table = Object.fromEntries((Object.keys(methods) as MethodKey[]).map((key) => [key, () => Promise.resolve({})]));
  const server = new RpcServer(withCheckedParams({ ...table, ...stats } as unknown as DaemonHandlers), log, new StreamHub(log));
  const socket = join(dir, 'sock');
  await server.listen(socket);
  servers.push(server);
  const client = await RpcClient.connect(socket);
  return { bus, server, client, logs };
}

/** Subscribes; `next(n)` resolves once n events in all have arrived. */
function subscribe(client: RpcClient, options: { kinds?: DaemonEvent['kind'][] } = {}) {
  const controller = new AbortController();
  const events: DaemonEvent[] = [];
  let wake: (() => void) | undefined;
  const done = client.subscribe(
    (event) => {
      events.push(event);
      wake?.();
    },
    { ...options, signal: controller.signal },
  );
  const next = async (count: number): Promise<DaemonEvent[]> => {
    while (events.length < count) await new Promise<void>((resolve) => (wake = resolve));
    return events;
  };
  return { controller, events, done, next };
}

async function until(predicate: () => boolean): Promise<void> {
  while (!predicate()) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('daemon.events', () => {
  test('starts with one vm.changed per VM, then streams bus events with the subscription token', async () => {
    const { bus, server, client } = await rig(() => Promise.resolve([view('a'), view('b', 'running')]));
    const sub = subscribe(client);
    const snapshot = await sub.next(2);
    assert.deepEqual(
      snapshot.map((e) => (e.kind === 'vm.changed' ? `${e.vm.name} ${e.vm.state}` : e.kind)),
      ['vm-a stopped', 'vm-b stopped'], // b is recorded running but its VMM is not alive: shown as it really is
    );
    assert.equal(snapshot[0]?.kind === 'vm.changed' && snapshot[0].vm.stats, null);
    await until(() => bus.listenerCount === 1);
    bus.publish(changed('a', 'starting'));
    bus.publish({ kind: 'vm.deleted', vm: { id: 'b', name: 'vm-b' } });
    const all = await sub.next(4);
    assert.deepEqual(
      all.slice(2).map((e) => e.kind),
      ['vm.changed', 'vm.deleted'],
    );
    const tokens = new Set(all.map((e) => e.token));
    assert.equal(tokens.size, 1, 'every event carries the one subscription token');
    sub.controller.abort();
    await sub.done;
    client.close();
    await server.drain(1000);
  });

  test('kinds filter the stream, the snapshot included', async () => {
    const { bus, server, client } = await rig(() => Promise.resolve([view('a')]));
    const sub = subscribe(client, { kinds: ['vm.deleted'] });
    await until(() => bus.listenerCount === 1);
    bus.publish(changed('a', 'running'));
    bus.publish({ kind: 'vm.stats', vm: { id: 'a', name: 'vm-a' }, sample: { at: 'now', vmm: { cpuPercent: 0, rssBytes: 0 }, guest: null } });
    bus.publish({ kind: 'vm.deleted', vm: { id: 'a', name: 'vm-a' } });
    const events = await sub.next(1);
    assert.deepEqual(
      events.map((e) => e.kind),
      ['vm.deleted'],
    );
    sub.controller.abort();
    await sub.done;
    client.close();
    await server.drain(1000);
  });

  test('events published while the snapshot is read come after it, none lost', async () => {
    let release!: (views: VmView[]) => void;
    const { bus, server, client } = await rig(() => new Promise<VmView[]>((resolve) => (release = resolve)));
    const sub = subscribe(client);
    await until(() => bus.listenerCount === 1);
    bus.publish(changed('a', 'running'));
    release([view('a')]);
    const events = await sub.next(2);
    assert.deepEqual(
      events.map((e) => (e.kind === 'vm.changed' ? e.vm.state : e.kind)),
      ['stopped', 'running'],
      'the snapshot, then the newer change',
    );
    sub.controller.abort();
    await sub.done;
    client.close();
    await server.drain(1000);
  });

  test('cancelling ends the request and removes its listener; so does a client going away', async () => {
    const { bus, server, client, logs } = await rig();
    const first = subscribe(client);
    await until(() => bus.listenerCount === 1);
    first.controller.abort();
    await first.done; // resolves: ending by cancel is how a subscription finishes
    await until(() => bus.listenerCount === 0);
    await until(() => server.inFlightCount === 0);

    const second = subscribe(client);
    await until(() => bus.listenerCount === 1);
    client.close();
    await assert.rejects(second.done, { code: 'ERR_DAEMON_UNREACHABLE' });
    await until(() => bus.listenerCount === 0);
    await until(() => server.inFlightCount === 0);
    assert.equal(logs.filter((l) => l.msg === 'event subscription started').length, 2);
    await server.drain(1000);
  });

  test('shutdown ends subscriptions at once (not after the grace period) and tells the client why', async () => {
    const { bus, server, client, logs } = await rig();
    const sub = subscribe(client);
    await until(() => bus.listenerCount === 1);
    const ended = assert.rejects(sub.done, (error: unknown) => error instanceof BangerError && error.code === 'ERR_DAEMON_SHUTTING_DOWN');
    // A grace period far longer than any test timeout: the drain must not wait for the subscription.
    await server.drain(24 * 60 * 60 * 1000);
    await ended;
    assert.equal(bus.listenerCount, 0);
    assert.equal(
      logs.some((l) => l.msg === 'shutdown grace period over, cancelling requests'),
      false,
    );
  });

  test('without a connection to send on (no notify), the handler refuses', async () => {
    const bus = new DaemonEventBus();
    const handlers = createStatsHandlers({
      vms: { list: () => Promise.resolve([]), show: () => Promise.reject(new Error('unused')), guest: () => Promise.reject(new Error('unused')) },
      stats: { stats: () => Promise.resolve([]), latest: () => null },
      events: bus,
    });
    const ctx = { opId: 'op_test', signal: new AbortController().signal, log: pino({ level: 'silent' }), progress: () => undefined };
    await assert.rejects(handlers.events({ subscriptionToken: 'tok' }, ctx), { code: 'ERR_INTERNAL' });
    assert.equal(bus.listenerCount, 0);
  });
});
