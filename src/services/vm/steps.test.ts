import assert from 'node:assert/strict';
import { test } from 'node:test';

import { pino } from 'pino';

import type { OpContext } from '../op-context.js';
import { runSteps, type Step } from './steps.js';

function context(stages: string[]): OpContext {
  return {
    opId: 'op_t',
    signal: new AbortController().signal,
    log: pino({ level: 'silent' }),
    progress: (stage) => {
      stages.push(stage);
    },
  };
}

function step(name: string, events: string[], options: { fail?: boolean; rollbackFails?: boolean } = {}): Step {
  return {
    stage: name,
    detail: name,
    run: () => {
      events.push(`run ${name}`);
      return options.fail === true ? Promise.reject(new Error(`${name} failed`)) : Promise.resolve();
    },
    rollback: () => {
      events.push(`undo ${name}`);
      return options.rollbackFails === true ? Promise.reject(new Error('undo broke')) : Promise.resolve();
    },
  };
}

test('steps run in order, each reported as a stage', async () => {
  const events: string[] = [];
  const stages: string[] = [];
  await runSteps([step('a', events), step('b', events)], context(stages));
  assert.deepEqual(events, ['run a', 'run b']);
  assert.deepEqual(stages, ['a', 'b']);
});

test('a failure rolls back the failed step (it may have done part of its work) and the completed ones, in reverse, and rethrows', async () => {
  const events: string[] = [];
  await assert.rejects(runSteps([step('a', events), step('b', events), step('c', events, { fail: true }), step('d', events)], context([])), /c failed/);
  assert.deepEqual(events, ['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a']);
});

test('a rollback that fails does not stop the others', async () => {
  const events: string[] = [];
  await assert.rejects(runSteps([step('a', events), step('b', events, { rollbackFails: true }), step('c', events, { fail: true })], context([])), /c failed/);
  assert.deepEqual(events, ['run a', 'run b', 'run c', 'undo c', 'undo b', 'undo a']);
});

test('a cancelled operation stops before the next step and rolls back', async () => {
  const events: string[] = [];
  const controller = new AbortController();
  const ctx = { ...context([]), signal: controller.signal };
  const cancelling: Step = {
    stage: 'x',
    detail: 'x',
    run: () => {
      events.push('run x');
      controller.abort(new Error('cancelled'));
      return Promise.resolve();
    },
    rollback: () => {
      events.push('undo x');
      return Promise.resolve();
    },
  };
  await assert.rejects(runSteps([cancelling, step('y', events)], ctx), /cancelled/);
  assert.deepEqual(events, ['run x', 'undo x']);
});
