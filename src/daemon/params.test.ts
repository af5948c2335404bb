import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { createDaemonLogger } from './logger.js';
import { optionalInteger, optionalString, requireAbsolutePath, requireInteger, requireString, withCheckedParams } from './params.js';
import type { DaemonHandlers } from './rpc-server.js';

const invalid =
  (pattern: RegExp) =>
  (e: unknown): boolean =>
    e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT' && pattern.test(e.message);

const ctx = { opId: 'op_test', signal: new AbortController().signal, log: createDaemonLogger('/dev/null'), progress: () => undefined };

test('handlers see checked params only; a bad request never reaches them', async () => {
  const seen: unknown[] = [];
  const handlers = withCheckedParams({
    vmShow: (params: unknown) => {
      seen.push(params);
      return Promise.resolve({});
    },
  } as unknown as DaemonHandlers);
  await handlers.vmShow({ ref: 'box' }, ctx);
  assert.deepEqual(seen, [{ ref: 'box' }]);
  await assert.rejects(handlers.vmShow({ ref: 'box', force: true } as never, ctx), invalid(/^unknown param "force" for vm\.show$/));
  await assert.rejects(handlers.vmShow({ ref: 42 } as never, ctx), invalid(/^param "ref" must be a name or id/));
  assert.equal(seen.length, 1);
});

test('field helpers for handlers that check their own params', () => {
  assert.equal(requireString({ ref: 'box' }, 'ref'), 'box');
  assert.throws(() => requireString({ ref: '' }, 'ref'), invalid(/param "ref" must be a non-empty string, got ""/));
  assert.throws(() => requireString(null, 'ref'), invalid(/"ref"/));
  assert.equal(optionalString({}, 'name'), undefined);
  assert.equal(requireAbsolutePath({ p: '/x' }, 'p'), '/x');
  assert.throws(() => requireAbsolutePath({ p: 'x' }, 'p'), invalid(/param "p" must be an absolute path/));
  assert.equal(requireInteger({ n: 2 }, 'n'), 2);
  assert.throws(() => requireInteger({ n: 2.5 }, 'n'), invalid(/"n" must be an integer, got 2.5/));
  assert.throws(() => requireInteger({ n: '2' }, 'n'), invalid(/"n" must be an integer/));
  assert.equal(optionalInteger({}, 'n'), undefined);
});
