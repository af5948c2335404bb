import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import type { ProgressEvent } from '../rpc/methods.js';
import { rowCells } from './format.js';
import { errorStatus, initialModel, reduce, selectedRow, TuiStore, type TuiAction, type TuiModel } from './model.js';
import { applyProgress, finishStages, noStages } from './progress-stages.js';
import { changed, deleted, sample, stats, vmInfo } from './test-fixtures.js';

const apply = (...actions: TuiAction[]): TuiModel => actions.reduce(reduce, initialModel);
const names = (model: TuiModel): string[] => model.rows.map((row) => row.vm.name);

const a = vmInfo('a', { createdAt: '2025-01-01T00:00:01.000Z' });
const b = vmInfo('b', { createdAt: '2025-01-01T00:00:02.000Z' });
const c = vmInfo('c', { createdAt: '2025-01-01T00:00:03.000Z' });

test('vm.changed adds a VM, and replaces it in place when it changes again; rows stay in creation order', () => {
  const model = apply({ type: 'event', event: changed(c) }, { type: 'event', event: changed(a) }, { type: 'event', event: changed(b) });
  assert.deepEqual(names(model), ['a', 'b', 'c']);
  const stopped = reduce(model, { type: 'event', event: changed({ ...b, state: 'stopped' }) });
  assert.deepEqual(names(stopped), ['a', 'b', 'c']);
  assert.equal(stopped.rows[1]?.vm.state, 'stopped');
});

test('vm.stats fills a running VM row; a state change away from running drops the sample; stats for unknown or stopped VMs are ignored', () => {
  let model = apply({ type: 'event', event: changed(a) }, { type: 'event', event: stats(a, sample({ cpuPercent: 50 })) });
  assert.equal(model.rows[0]?.sample?.vmm.cpuPercent, 50);
  // A later vm.changed that keeps it running keeps the sample.
  model = reduce(model, { type: 'event', event: changed({ ...a, ip: '10.0.0.9' }) });
  assert.equal(model.rows[0]?.sample?.vmm.cpuPercent, 50);
  model = reduce(model, { type: 'event', event: changed({ ...a, state: 'stopping' }) });
  assert.equal(model.rows[0]?.sample, null);
  const late = reduce(model, { type: 'event', event: stats(a, sample()) });
  assert.equal(late, model, 'a sample of a VM that is not running changes nothing');
  assert.equal(reduce(model, { type: 'event', event: stats(b, sample()) }), model, 'a sample of an unknown VM changes nothing');
});

test('the first vm.changed of a running VM shows its latest sample at once (no wait for the next vm.stats)', () => {
  const model = apply({ type: 'event', event: changed({ ...a, stats: sample({ cpuPercent: 12 }) }) });
  assert.equal(model.rows[0]?.sample?.vmm.cpuPercent, 12);
  // A newer sample carried by the VM replaces the one the row had.
  const newer = reduce(model, { type: 'event', event: changed({ ...a, stats: sample({ cpuPercent: 30 }) }) });
  assert.equal(newer.rows[0]?.sample?.vmm.cpuPercent, 30);
});

test('vm.deleted removes the row; the selection moves to the row that took its place, or the new last one', () => {
  let model = apply(...[a, b, c].map((vm): TuiAction => ({ type: 'event', event: changed(vm) })), { type: 'move', by: 1 });
  assert.equal(selectedRow(model)?.vm.name, 'b');
  model = reduce(model, { type: 'event', event: deleted(b) });
  assert.deepEqual(names(model), ['a', 'c']);
  assert.equal(selectedRow(model)?.vm.name, 'c');
  model = reduce(model, { type: 'event', event: deleted(c) });
  assert.equal(selectedRow(model)?.vm.name, 'a');
  model = reduce(model, { type: 'event', event: deleted(a) });
  assert.equal(selectedRow(model), undefined);
  assert.equal(reduce(model, { type: 'event', event: deleted(a) }), model, 'deleting an unknown VM changes nothing');
});

test('the selection starts at the first row, moves with the keys, and stays inside the table', () => {
  let model = apply(...[a, b, c].map((vm): TuiAction => ({ type: 'event', event: changed(vm) })));
  assert.equal(selectedRow(model)?.vm.name, 'a');
  model = reduce(model, { type: 'move', by: -1 });
  assert.equal(selectedRow(model)?.vm.name, 'a');
  model = [1, 1, 1, 1].reduce((m) => reduce(m, { type: 'move', by: 1 }), model);
  assert.equal(selectedRow(model)?.vm.name, 'c');
  // A VM created before the selected one moves rows, not the selection.
  model = reduce(model, { type: 'event', event: changed(vmInfo('early', { createdAt: '2024-01-01T00:00:00.000Z' })) });
  assert.equal(selectedRow(model)?.vm.name, 'c');
});

test('a lost stream says why in the status line', () => {
  const status = errorStatus(new BangerError('ERR_DAEMON_UNREACHABLE', 'the daemon closed the connection', { hint: 'see `banger daemon logs`' }));
  const model = apply({ type: 'streamLost', status });
  assert.equal(model.stream, 'lost');
  assert.deepEqual(model.status, { kind: 'error', text: 'error[ERR_DAEMON_UNREACHABLE]: the daemon closed the connection', hint: 'see `banger daemon logs`' });
});

test("an error status keeps a BangerError's code and hint; anything else is internal", () => {
  assert.deepEqual(errorStatus(new BangerError('ERR_VM_NOT_RUNNING', 'VM box is not running', { hint: 'start it' })), {
    kind: 'error',
    text: 'error[ERR_VM_NOT_RUNNING]: VM box is not running',
    hint: 'start it',
  });
  assert.equal(errorStatus(new Error('boom')).text, 'error[ERR_INTERNAL]: boom', 'anything else is internal, as the CLI says it');
});

test('the store notifies its listeners on a change only', () => {
  const store = new TuiStore();
  let calls = 0;
  const unsubscribe = store.subscribe(() => calls++);
  store.dispatch({ type: 'event', event: changed(a) });
  store.dispatch({ type: 'event', event: deleted(b) }); // unknown: no change
  assert.equal(calls, 1);
  unsubscribe();
  store.dispatch({ type: 'event', event: deleted(a) });
  assert.equal(calls, 1);
  assert.deepEqual(store.getModel().rows, []);
});

test('cells: spec, workspace (guest path and short base commit), uptime, CPU and guest memory; dashes without a sample', () => {
  const vm = vmInfo('box', {
    workspace: {
      guestPath: '/root/repo',
      sourcePath: '/home/me/repo',
      baseCommit: '1a2b3c4d5e6f7a8b9c0d',
      sourceHead: '1a2b3c4d5e6f7a8b9c0d',
      mode: 'shallow',
      branch: null,
      includeUntracked: false,
      preparedAt: '2025-01-01T00:00:00.000Z',
    },
  });
  const cells = rowCells({ vm, sample: sample({ cpuPercent: 12.6, usedMiB: 256, totalMiB: 1024, uptimeSeconds: 75 }) });
  assert.equal(cells.SPEC, '2 vcpu · 1024 MiB');
  assert.equal(cells.WORKSPACE, '/root/repo@1a2b3c4d');
  assert.equal(cells.UPTIME, '1m15s');
  assert.equal(cells.CPU, '13%');
  assert.equal(cells.MEM, '256.0 MiB / 1.0 GiB');
  assert.equal(rowCells({ vm, sample: sample({ guest: null }) }).MEM, 'rss 300.0 MiB', 'the VMM RSS when the guest did not answer');
  const none = rowCells({ vm: vmInfo('off', { state: 'stopped' }), sample: null });
  assert.deepEqual([none.WORKSPACE, none.UPTIME, none.CPU, none.MEM], ['-', '-', '-', '-']);
});

test('progress stages: a new stage id finishes the previous one; counts as the CLI shows them', () => {
  const event = (stage: string, detail: string, current?: number, total?: number): ProgressEvent => ({
    token: 't',
    stage,
    detail,
    ...(current === undefined ? {} : { current }),
    ...(total === undefined ? {} : { total }),
  });
  let stages = applyProgress(noStages, event('pull', 'pulling image', 1024, 4096));
  assert.deepEqual(stages, { done: [], current: { stage: 'pull', line: 'pulling image (1.0 KiB / 4.0 KiB, 25%)' } });
  stages = applyProgress(stages, event('pull', 'pulling image', 4096, 4096));
  assert.equal(stages.done.length, 0, 'the same stage moving on is not a new line');
  stages = applyProgress(stages, event('boot', 'booting'));
  assert.deepEqual(stages.done, ['pulling image (4.0 KiB / 4.0 KiB, 100%)']);
  assert.deepEqual(finishStages(stages), { done: ['pulling image (4.0 KiB / 4.0 KiB, 100%)', 'booting'], current: null });
});
