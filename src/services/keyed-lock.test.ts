import assert from 'node:assert/strict';
import { test } from 'node:test';

import { KeyedLock } from './keyed-lock.js';

test('runs for one key never overlap; other keys proceed; a failure does not block the queue', { timeout: 10_000 }, async () => {
  const lock = new KeyedLock();
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const first = lock.run('vm1', async () => {
    events.push('first start');
    await gate;
    events.push('first end');
    throw new Error('first failed');
  });
  const second = lock.run('vm1', () => {
    events.push('second');
    return Promise.resolve(2);
  });
  const other = await lock.run('vm2', () => {
    events.push('other key');
    return Promise.resolve('free');
  });
  assert.equal(other, 'free');
  assert.equal(lock.busy('vm1'), true);
  assert.deepEqual(events, ['first start', 'other key'], 'vm2 ran while vm1 was held; the second vm1 run waits');
  release();
  await assert.rejects(first, /first failed/);
  assert.equal(await second, 2);
  assert.deepEqual(events, ['first start', 'other key', 'first end', 'second']);
  assert.equal(lock.busy('vm1'), false);
});
