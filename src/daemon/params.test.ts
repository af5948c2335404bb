import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { optionalAbsolutePath, optionalInteger, optionalString, requireAbsolutePath, requireInteger, requireString } from './params.js';

const invalid =
  (pattern: RegExp) =>
  (e: unknown): boolean =>
    e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT' && pattern.test(e.message);

test('strings', () => {
  assert.equal(requireString({ ref: 'box' }, 'ref'), 'box');
  assert.throws(() => requireString({ ref: '' }, 'ref'), invalid(/param "ref" must be a non-empty string/));
  assert.throws(() => requireString({ ref: 3 }, 'ref'), invalid(/"ref"/));
  assert.throws(() => requireString(null, 'ref'), invalid(/"ref"/));
  assert.equal(optionalString({}, 'name'), undefined);
});

test('absolute paths', () => {
  assert.equal(requireAbsolutePath({ p: '/x' }, 'p'), '/x');
  assert.throws(() => requireAbsolutePath({ p: 'x' }, 'p'), invalid(/must be an absolute path, got "x"/));
  assert.equal(optionalAbsolutePath({}, 'p'), undefined);
});

test('integers', () => {
  assert.equal(requireInteger({ n: 2 }, 'n'), 2);
  assert.throws(() => requireInteger({ n: 2.5 }, 'n'), invalid(/"n" must be an integer/));
  assert.throws(() => requireInteger({ n: '2' }, 'n'), invalid(/"n" must be an integer/));
  assert.throws(() => requireInteger({}, 'n'), invalid(/"n"/));
  assert.equal(optionalInteger({}, 'n'), undefined);
});
