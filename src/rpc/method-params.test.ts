import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from './errors.js';
import { METHOD_PARAMS, paramNames, parseParams } from './method-params.js';
import { methods } from './methods.js';

const invalid =
  (pattern: RegExp) =>
  (e: unknown): boolean =>
    e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT' && pattern.test(e.message);

const create = { vcpu: 2, memoryMiB: 1024, diskSizeBytes: 8 * 1024 ** 3, init: 'minimal' };

test('every method has a schema entry', () => {
  assert.deepEqual(Object.keys(METHOD_PARAMS).sort(), Object.keys(methods).sort());
});

test('valid params come back typed, with only the known fields', () => {
  assert.deepEqual(parseParams('vmCreate', { ...create, name: 'box', nat: true }), { ...create, name: 'box', nat: true });
  assert.deepEqual(parseParams('vmShow', { ref: 'box', progressToken: 'abc123' }), { ref: 'box', progressToken: 'abc123' });
});

test('vm.create needs no spec: every field left out is filled by the daemon (vm.defaults)', () => {
  assert.deepEqual(parseParams('vmCreate', {}), {});
  assert.deepEqual(parseParams('vmCreate', { image: 'debian-bookworm' }), { image: 'debian-bookworm' });
  assert.throws(() => parseParams('vmCreate', { memoryMiB: 64 }), invalid(/^param "memoryMiB" must be MiB from 128/));
});

test('daemon.events: a subscription token, and optionally the kinds', () => {
  assert.deepEqual(parseParams('events', { subscriptionToken: 'abc' }), { subscriptionToken: 'abc' });
  assert.deepEqual(parseParams('events', { subscriptionToken: 'abc', kinds: ['vm.stats'] }), { subscriptionToken: 'abc', kinds: ['vm.stats'] });
  assert.throws(() => parseParams('events', { subscriptionToken: 'abc', kinds: ['vm.nope'] }), invalid(/^param "kinds"/));
  assert.throws(() => parseParams('events', { subscriptionToken: 'abc', kinds: [] }), invalid(/^param "kinds"/));
  assert.throws(() => parseParams('events', {}), invalid(/^param "subscriptionToken" is required$/));
});

test('absent params are checked as an empty object (JSON-RPC allows leaving them out)', () => {
  assert.deepEqual(parseParams('ping', undefined), {});
  assert.throws(() => parseParams('vmShow', undefined), invalid(/^param "ref" is required$/));
});

test('params must be an object: positional params and null are refused', () => {
  assert.throws(() => parseParams('vmShow', ['box']), invalid(/^vm\.show takes named params \(a JSON object\), got an array$/));
  assert.throws(() => parseParams('vmDelete', [{ ref: 'box' }]), invalid(/takes named params \(a JSON object\), got an array$/));
  assert.throws(() => parseParams('vmList', null), invalid(/takes named params \(a JSON object\), got null$/));
  assert.throws(() => parseParams('vmShow', 'box'), invalid(/got "box"$/));
});

test('unknown params are refused by name, with the known ones in the hint', () => {
  assert.throws(
    () => parseParams('vmCreate', { ...create, nmae: 'box' }),
    (e: unknown) => invalid(/^unknown param "nmae" for vm\.create$/)(e) && e instanceof BangerError && (e.hint ?? '').includes('takes: name, image, vcpu'),
  );
  assert.throws(
    () => parseParams('ping', { verbose: true }),
    (e: unknown) => invalid(/unknown param "verbose"/)(e) && ((e as BangerError).hint ?? '').includes('takes no params'),
  );
  // Names of Object.prototype's members are unknown params too, not schema fields.
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.throws(() => parseParams('vmShow', JSON.parse(`{"ref": "box", "${name}": 1}`)), invalid(new RegExp(`unknown param "${name}"`)));
  }
});

test('each param is checked by its rule, and the message names the param', () => {
  assert.throws(() => parseParams('vmCreate', { ...create, vcpu: '2' }), invalid(/^param "vcpu" must be an integer from 1 to 64, got "2"$/));
  assert.throws(() => parseParams('vmCreate', { ...create, noStart: 'true' }), invalid(/^param "noStart" must be true or false, got "true"$/));
  assert.throws(() => parseParams('vmCreate', { ...create, name: 'Box' }), invalid(/^"Box" is not a valid VM name$/));
  assert.throws(() => parseParams('vmShow', { ref: undefined }), invalid(/^param "ref" is required$/));
  assert.throws(() => parseParams('imageRegister', { name: 'x', rootfs: 'rel/path', kernel: 'k' }), invalid(/^param "rootfs" must be an absolute path/));
  assert.throws(() => parseParams('sleep', { ms: -1 }), invalid(/^param "ms" must be an integer from 0 to 600000/));
});

test('vm.exec: argv and terminal', () => {
  const base = { ref: 'box', command: ['true'], streamToken: 'a'.repeat(32) };
  assert.deepEqual(parseParams('vmExec', { ...base, tty: { cols: 80, rows: 24, term: '' } }), { ...base, tty: { cols: 80, rows: 24, term: '' } });
  assert.throws(() => parseParams('vmExec', { ...base, command: [] }), invalid(/^param "command" must be a non-empty array/));
  assert.throws(() => parseParams('vmExec', { ...base, command: ['a', 'b\0c'] }), invalid(/^param "command" item 1 must be a string without NUL bytes/));
  assert.throws(() => parseParams('vmExec', { ...base, tty: { cols: 80, rows: 24 } }), invalid(/^param "tty" needs field "term"/));
  assert.throws(() => parseParams('vmExec', { ...base, tty: { cols: 80, rows: 24, term: 'x', bell: 1 } }), invalid(/^param "tty" has an unknown field "bell"/));
  assert.throws(() => parseParams('vmExec', { ...base, tty: { cols: 'wide', rows: 24, term: 'x' } }), invalid(/^param "tty" field "cols" must be an integer/));
});

test('paramNames lists what a method takes', () => {
  assert.deepEqual(paramNames('kernelShow'), ['ref']);
  assert.deepEqual(paramNames('workspaceExport'), ['ref', 'streamToken', 'baseCommit', 'stat']);
  assert.deepEqual(paramNames('vmLogs'), ['ref', 'lines', 'progressToken']);
});

test('vm.logs: a ref, and optionally how many lines', () => {
  assert.deepEqual(parseParams('vmLogs', { ref: 'box' }), { ref: 'box' });
  assert.deepEqual(parseParams('vmLogs', { ref: 'box', lines: 100_000 }), { ref: 'box', lines: 100_000 });
  assert.throws(() => parseParams('vmLogs', { lines: 5 }), invalid(/^param "ref" is required$/));
  assert.throws(() => parseParams('vmLogs', { ref: 'box', lines: 0 }), invalid(/^param "lines" must be an integer from 1 to 100000, got 0$/));
  assert.throws(() => parseParams('vmLogs', { ref: 'box', lines: 100_001 }), invalid(/^param "lines" must be an integer from 1 to 100000/));
  assert.throws(() => parseParams('vmLogs', { ref: 'box', lines: 2.5 }), invalid(/^param "lines" must be an integer/));
  assert.throws(() => parseParams('vmLogs', { ref: 'box', lines: '5' }), invalid(/^param "lines" must be an integer/));
  assert.throws(() => parseParams('vmLogs', { ref: 'box', follow: true }), invalid(/^unknown param "follow" for vm\.logs$/));
});
