import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { pino } from 'pino';

import { PrivilegedOps } from '../../root-helper/privileged-ops.js';
import { TapPool } from './tap-pool.js';

/** Records the helper calls the pool makes and keeps a set of "existing" taps (a unit-test fake; the e2e tests use the real helper). */
class FakeOps extends PrivilegedOps {
  readonly mode = 'helper';
  readonly calls: string[] = [];
  readonly taps = new Set<string>();

  protected call(op: string, args: Record<string, unknown>): Promise<unknown> {
    this.calls.push(typeof args.tap === 'string' ? `${op} ${args.tap}` : op);
    if (op === 'tap.create') this.taps.add(String(args.tap));
    if (op === 'tap.delete') this.taps.delete(String(args.tap));
    return Promise.resolve(null);
  }
}

function pool(size: number): { ops: FakeOps; pool: TapPool } {
  const ops = new FakeOps();
  return { ops, pool: new TapPool({ ops, bridge: 'banger0', uid: 1000, size, log: pino({ level: 'silent' }), exists: (tap) => ops.taps.has(tap) }) };
}

describe('tap pool', { timeout: 10_000 }, () => {
  test('fills to its size in the background, hands out idle taps, and refills', async () => {
    const { ops, pool: taps } = pool(2);
    taps.refill();
    await taps.settled();
    assert.deepEqual(taps.status(), { size: 2, idle: ['banger0p0', 'banger0p1'], inUse: [] });
    assert.equal(await taps.take(), 'banger0p0');
    await taps.settled();
    assert.deepEqual(taps.status(), { size: 2, idle: ['banger0p1', 'banger0p2'], inUse: ['banger0p0'] });
    assert.deepEqual(ops.calls, ['tap.create banger0p0', 'tap.create banger0p1', 'tap.create banger0p2']);
  });

  test('an empty pool creates a tap on the spot; names never collide with taps in use', async () => {
    const { pool: taps } = pool(0);
    assert.equal(await taps.take(), 'banger0p0');
    assert.equal(await taps.take(), 'banger0p1');
    await taps.give('banger0p0');
    assert.equal(await taps.take(), 'banger0p0', 'the lowest free name is reused');
  });

  test('a released tap returns to the pool while it has room, and is deleted otherwise', async () => {
    const { ops, pool: taps } = pool(1);
    const a = await taps.take();
    const b = await taps.take();
    await taps.settled();
    assert.equal(taps.status().idle.length, 1);
    await taps.give(a);
    assert.ok(ops.calls.includes(`tap.delete ${a}`), 'the pool was full: deleted');
    assert.deepEqual(taps.status().inUse, [b]);
  });

  test('adopted taps are reused, and one deleted behind the pool is skipped', async () => {
    const { ops, pool: taps } = pool(2);
    ops.taps.add('banger0p5');
    taps.adopt(['banger0p4', 'banger0p5'], ['banger0p0']);
    assert.ok(taps.holds('banger0p0') && taps.holds('banger0p4'));
    assert.equal(await taps.take(), 'banger0p5', 'banger0p4 no longer exists');
    await taps.discardIdle();
    assert.deepEqual(taps.status().idle, []);
  });
});
