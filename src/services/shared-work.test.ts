import assert from 'node:assert/strict';
import { test } from 'node:test';

import { pino } from 'pino';

import { BangerError } from '../rpc/errors.js';
import type { OpContext } from './op-context.js';
import { SharedWork } from './shared-work.js';

interface Caller {
  ctx: OpContext;
  cancel: (why: string) => void;
  lines: string[];
}

function caller(opId: string): Caller {
  const controller = new AbortController();
  const lines: string[] = [];
  return {
    ctx: {
      opId,
      signal: controller.signal,
      log: pino({ level: 'silent' }),
      progress: (stage, detail) => lines.push(`${stage}: ${detail}`),
    },
    cancel: (why) => {
      controller.abort(new BangerError('ERR_CANCELLED', why));
    },
    lines,
  };
}

/** Work that finishes when the test says so, recording the signal it ran under. */
function gatedWork(): {
  work: (shared: OpContext) => Promise<string>;
  finish: (value: string) => void;
  fail: (error: Error) => void;
  started: () => number;
  signal: () => AbortSignal;
  report: (line: string) => void;
} {
  let runs = 0;
  let shared: OpContext | undefined;
  let finish!: (value: string) => void;
  let fail!: (error: Error) => void;
  const gate = new Promise<string>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  return {
    work: (ctx) => {
      runs++;
      shared = ctx;
      return gate;
    },
    finish,
    fail,
    started: () => runs,
    signal: () => {
      assert.ok(shared !== undefined);
      return shared.signal;
    },
    report: (line) => {
      assert.ok(shared !== undefined);
      shared.progress('step', line);
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const cancelled = (why: string) => (error: unknown) => error instanceof BangerError && error.code === 'ERR_CANCELLED' && error.message === why;

test('callers of one key share one run and its result; a joiner gets a wait line', async () => {
  const shared = new SharedWork<string>();
  const gate = gatedWork();
  const a = caller('op_a');
  const b = caller('op_b');
  const first = shared.run('k', a.ctx, gate.work, 'waiting for k');
  const second = shared.run('k', b.ctx, gate.work, 'waiting for k');
  await tick();
  assert.equal(gate.started(), 1);
  assert.deepEqual(a.lines, []);
  assert.deepEqual(b.lines, ['wait: waiting for k']);
  gate.report('halfway');
  gate.finish('done');
  assert.deepEqual(await Promise.all([first, second]), ['done', 'done']);
  assert.deepEqual(a.lines, ['step: halfway']);
  assert.deepEqual(b.lines, ['wait: waiting for k', 'step: halfway']);
  assert.equal(shared.busy('k'), false);
});

test("a joiner's cancel rejects only its own call; the work goes on for the leader", async () => {
  const shared = new SharedWork<string>();
  const gate = gatedWork();
  const leader = caller('op_a');
  const joiner = caller('op_b');
  const first = shared.run('k', leader.ctx, gate.work, 'wait');
  const second = shared.run('k', joiner.ctx, gate.work, 'wait');
  await tick();
  joiner.cancel('joiner interrupted');
  await assert.rejects(second, cancelled('joiner interrupted'));
  assert.equal(gate.signal().aborted, false);
  gate.report('after the joiner left');
  gate.finish('done');
  assert.equal(await first, 'done');
  assert.deepEqual(joiner.lines, ['wait: wait']);
  assert.deepEqual(leader.lines, ['step: after the joiner left']);
});

test("the leader's cancel rejects only its own call; joiners still get the result", async () => {
  const shared = new SharedWork<string>();
  const gate = gatedWork();
  const leader = caller('op_a');
  const joiner = caller('op_b');
  const first = shared.run('k', leader.ctx, gate.work, 'wait');
  const second = shared.run('k', joiner.ctx, gate.work, 'wait');
  await tick();
  leader.cancel('leader interrupted');
  await assert.rejects(first, cancelled('leader interrupted'));
  assert.equal(gate.signal().aborted, false);
  assert.equal(shared.busy('k'), true);
  gate.finish('done');
  assert.equal(await second, 'done');
});

test('the work is aborted once every caller has cancelled, and the key is free again at once', async () => {
  const shared = new SharedWork<string>();
  const gate = gatedWork();
  const a = caller('op_a');
  const b = caller('op_b');
  const first = shared.run('k', a.ctx, gate.work, 'wait');
  const second = shared.run('k', b.ctx, gate.work, 'wait');
  await tick();
  a.cancel('a interrupted');
  await assert.rejects(first, cancelled('a interrupted'));
  assert.equal(gate.signal().aborted, false);
  let secondSettled = false;
  const settle = (): void => {
    secondSettled = true;
  };
  second.then(settle, settle);
  b.cancel('b interrupted');
  assert.equal(gate.signal().aborted, true);
  assert.equal(shared.busy('k'), false);
  // The last caller's answer waits for the aborted work to wind down (its cleanup).
  await tick();
  assert.equal(secondSettled, false);

  // A new caller starts new work instead of joining the one being torn down.
  const fresh = gatedWork();
  const c = caller('op_c');
  const third = shared.run('k', c.ctx, fresh.work, 'wait');
  await tick();
  assert.equal(fresh.started(), 1);
  assert.deepEqual(c.lines, []);
  gate.fail(new BangerError('ERR_CANCELLED', 'old work torn down'));
  await assert.rejects(second, cancelled('b interrupted'));
  fresh.finish('fresh');
  assert.equal(await third, 'fresh');
});

test('a failure reaches every caller, and the next call starts over', async () => {
  const shared = new SharedWork<string>();
  const gate = gatedWork();
  const first = shared.run('k', caller('op_a').ctx, gate.work, 'wait');
  const second = shared.run('k', caller('op_b').ctx, gate.work, 'wait');
  gate.fail(new BangerError('ERR_DOWNLOAD_FAILED', 'mirror down'));
  await assert.rejects(first, /mirror down/);
  await assert.rejects(second, /mirror down/);
  assert.equal(shared.busy('k'), false);
  assert.equal(await shared.run('k', caller('op_c').ctx, () => Promise.resolve('again'), 'wait'), 'again');
});

test('different keys never share; an already cancelled caller starts nothing', async () => {
  const shared = new SharedWork<string>();
  const one = gatedWork();
  const two = gatedWork();
  const first = shared.run('one', caller('op_a').ctx, one.work, 'wait');
  const second = shared.run('two', caller('op_b').ctx, two.work, 'wait');
  await tick();
  assert.equal(one.started(), 1);
  assert.equal(two.started(), 1);
  one.finish('1');
  two.finish('2');
  assert.deepEqual(await Promise.all([first, second]), ['1', '2']);

  const late = caller('op_c');
  late.cancel('already gone');
  const never = gatedWork();
  await assert.rejects(shared.run('three', late.ctx, never.work, 'wait'), cancelled('already gone'));
  await tick();
  assert.equal(never.started(), 0);
  assert.equal(shared.busy('three'), false);
});
