import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { VmStatsSample } from '../../rpc/methods.js';
import { StatsHistory } from './stats-history.js';

const sample = (n: number): VmStatsSample => ({ at: new Date(n * 1000).toISOString(), vmm: { cpuPercent: n, rssBytes: n }, guest: null });

test('keeps the last N samples per VM, oldest first', () => {
  const history = new StatsHistory(3);
  const track = history.track('vm1');
  for (let n = 1; n <= 5; n++) history.add(track, sample(n));
  assert.deepEqual(
    history.samples('vm1').map((s) => s.vmm.cpuPercent),
    [3, 4, 5],
  );
  assert.equal(history.latest('vm1')?.vmm.cpuPercent, 5);
  assert.equal(history.latest('other'), null);
  assert.deepEqual(history.samples('other'), []);
});

test('samples() is a copy: callers cannot change the history', () => {
  const history = new StatsHistory(3);
  history.add(history.track('vm1'), sample(1));
  history.samples('vm1').push(sample(2));
  assert.equal(history.samples('vm1').length, 1);
});

test('a forgotten VM loses its history, and a track taken before is no longer current', () => {
  const history = new StatsHistory(3);
  const track = history.track('vm1');
  history.add(track, sample(1));
  history.forget('vm1');
  assert.equal(history.latest('vm1'), null);
  assert.equal(history.isCurrent('vm1', track), false);
  assert.equal(history.isCurrent('vm1', history.track('vm1')), true);
});

test('retain keeps only the given VMs', () => {
  const history = new StatsHistory(2);
  for (const id of ['a', 'b', 'c']) history.add(history.track(id), sample(1));
  history.retain(new Set(['b']));
  assert.deepEqual(history.vmIds, ['b']);
});

test('the size must be a positive integer', () => {
  assert.throws(() => new StatsHistory(0));
  assert.throws(() => new StatsHistory(1.5));
});
