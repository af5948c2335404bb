import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { createDaemonLogger } from './logger.js';
import { withCheckedParams } from './params.js';
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
  await assert.rejects(handlers.vmShow(undefined as never, ctx), invalid(/^param "ref" is required$/));
  await assert.rejects(handlers.vmShow(['box'] as never, ctx), invalid(/takes named params/));
  assert.equal(seen.length, 1);
});
