import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { splitRunArgs } from './vm-run.js';

test('vm run operands: at most one path before --, the command after it', () => {
  assert.deepEqual(splitRunArgs(['make', 'test'], ['vm', 'run', '--', 'make', 'test']), { path: undefined, argv: ['make', 'test'] });
  assert.deepEqual(splitRunArgs(['./repo', 'make', 'test'], ['vm', 'run', '--rm', './repo', '--', 'make', 'test']), { path: './repo', argv: ['make', 'test'] });
  assert.deepEqual(splitRunArgs(['./repo'], ['vm', 'run', './repo']), { path: './repo', argv: [] }, 'no command: a shell');
  assert.deepEqual(splitRunArgs([], ['vm', 'run']), { path: undefined, argv: [] });
  assert.deepEqual(splitRunArgs(['sh', '-c', 'a -- b'], ['vm', 'run', '--', 'sh', '-c', 'a -- b']), { path: undefined, argv: ['sh', '-c', 'a -- b'] });
  assert.deepEqual(
    splitRunArgs(['p', 'x', '--', 'y'], ['vm', 'run', 'p', '--', 'x', '--', 'y']),
    { path: 'p', argv: ['x', '--', 'y'] },
    'only the first -- splits',
  );
  assert.throws(
    () => splitRunArgs(['a', 'b'], ['vm', 'run', 'a', 'b']),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_USAGE' && e.message.includes('at most one path'),
  );
});
