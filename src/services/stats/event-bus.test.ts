import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { VmStatsSample } from '../../rpc/methods.js';
import { DaemonEventBus, type BusEvent } from './event-bus.js';

const SAMPLE: VmStatsSample = { at: '2025-01-01T00:00:00.000Z', vmm: { cpuPercent: 1, rssBytes: 2 }, guest: null };
const deleted = (name: string): BusEvent => ({ kind: 'vm.deleted', vm: { id: `id-${name}`, name } });
const stats = (name: string): BusEvent => ({ kind: 'vm.stats', vm: { id: `id-${name}`, name }, sample: SAMPLE });

test('a subscriber gets every event in order until it unsubscribes', () => {
  const bus = new DaemonEventBus();
  const seen: string[] = [];
  const unsubscribe = bus.subscribe((event) => seen.push(`${event.kind} ${event.vm.name}`));
  bus.publish(deleted('a'));
  bus.publish(stats('b'));
  unsubscribe();
  bus.publish(deleted('c'));
  assert.deepEqual(seen, ['vm.deleted a', 'vm.stats b']);
  assert.equal(bus.listenerCount, 0);
});

test('kinds filter what a subscriber gets', () => {
  const bus = new DaemonEventBus();
  const onlyStats: string[] = [];
  const all: string[] = [];
  bus.subscribe((event) => onlyStats.push(event.vm.name), ['vm.stats']);
  bus.subscribe((event) => all.push(event.vm.name));
  bus.publish(deleted('a'));
  bus.publish(stats('b'));
  assert.deepEqual(onlyStats, ['b']);
  assert.deepEqual(all, ['a', 'b']);
});

test('a listener that throws is reported and neither the publisher nor the other listeners notice', () => {
  const failures: string[] = [];
  const bus = new DaemonEventBus((error, event) => failures.push(`${(error as Error).message} on ${event.kind}`));
  const seen: string[] = [];
  bus.subscribe(() => {
    throw new Error('boom');
  });
  bus.subscribe((event) => seen.push(event.vm.name));
  assert.doesNotThrow(() => {
    bus.publish(deleted('a'));
  });
  assert.deepEqual(seen, ['a']);
  assert.deepEqual(failures, ['boom on vm.deleted']);
});

test('a listener removed by another during delivery does not get the event', () => {
  const bus = new DaemonEventBus();
  const seen: string[] = [];
  let second: () => void = () => undefined;
  bus.subscribe(() => {
    second();
  });
  second = bus.subscribe(() => seen.push('second'));
  bus.publish(deleted('a'));
  assert.deepEqual(seen, []);
  assert.equal(bus.listenerCount, 1);
});

test('unsubscribing twice is harmless, and the same listener may subscribe twice', () => {
  const bus = new DaemonEventBus();
  const seen: string[] = [];
  const listener = (event: BusEvent): void => {
    seen.push(event.vm.name);
  };
  const first = bus.subscribe(listener);
  const again = bus.subscribe(listener);
  bus.publish(deleted('a'));
  first();
  first();
  bus.publish(deleted('b'));
  again();
  assert.deepEqual(seen, ['a', 'a', 'b']);
  assert.equal(bus.listenerCount, 0);
});
