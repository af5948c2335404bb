import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError, hasErrnoCode, toBangerError, WIRE_CODES } from './errors.js';
import { decodeError, encodeError } from './wire.js';

test('wire codes are unique and inside banger’s reserved range', () => {
  const numbers = Object.values(WIRE_CODES);
  assert.equal(new Set(numbers).size, numbers.length);
  for (const n of numbers) assert.ok(n >= 10000 && n <= 10999, `${n} outside 10000-10999`);
});

test('a BangerError survives the JSON-RPC round trip with code, hint and op id', () => {
  const original = new BangerError('ERR_VM_NOT_RUNNING', 'vm box is not running', { hint: 'banger vm start box' });
  const encoded = encodeError(original, 'op_abc');
  assert.equal(encoded.code, WIRE_CODES.ERR_VM_NOT_RUNNING);
  const decoded = decodeError(encoded);
  assert.equal(decoded.code, 'ERR_VM_NOT_RUNNING');
  assert.equal(decoded.message, 'vm box is not running');
  assert.equal(decoded.hint, 'banger vm start box');
  assert.equal(decoded.opId, 'op_abc');
});

test('unexpected errors travel as ERR_INTERNAL with a bug-report hint', () => {
  const decoded = decodeError(encodeError(new TypeError('x is undefined'), 'op_1'));
  assert.equal(decoded.code, 'ERR_INTERNAL');
  assert.equal(decoded.message, 'x is undefined');
  assert.match(decoded.hint ?? '', /bug/);
});

test('toBangerError keeps BangerErrors and wraps the rest', () => {
  const e = new BangerError('ERR_USAGE', 'bad');
  assert.equal(toBangerError(e), e);
  assert.equal(toBangerError('boom').code, 'ERR_INTERNAL');
});

test('hasErrnoCode follows the cause chain', () => {
  const root = Object.assign(new Error('nope'), { code: 'ENOENT' });
  assert.equal(hasErrnoCode(new BangerError('ERR_STORE_OPEN', 'x', { cause: root }), 'ENOENT'), true);
  assert.equal(hasErrnoCode(new Error('plain'), 'ENOENT'), false);
});
