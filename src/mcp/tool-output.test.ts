import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { bounded, failed, MAX_OUTPUT_CHARS, ok } from './tool-output.js';

test('output that fits is passed whole', () => {
  assert.equal(bounded('short'), 'short');
  const exact = 'x'.repeat(MAX_OUTPUT_CHARS);
  assert.equal(bounded(exact), exact);
});

test('long output keeps its head and its tail (where errors are) and says how much was left out', () => {
  const text = `START${'m'.repeat(200_000)}END`;
  const cut = bounded(text, 1000);
  assert.ok(cut.startsWith('START'));
  assert.ok(cut.endsWith('END'));
  const omitted = Number(/\[… (\d+) characters left out …\]/.exec(cut)?.[1]);
  assert.equal(omitted, text.length - 1000);
  assert.ok(cut.length < 1100);
});

test('a result lists only the sections with content, each bounded', () => {
  const result = ok('exit status 0', { exit_code: 0 }, { stdout: 'out\n', stderr: '' });
  assert.deepEqual(result.content, [{ type: 'text', text: 'exit status 0\n--- stdout ---\nout\n' }]);
  assert.deepEqual(result.structuredContent, { exit_code: 0 });
  assert.equal(result.isError, undefined);
});

test('a failure carries the stable code and the hint, flagged as an error', () => {
  const result = failed(new BangerError('ERR_NOT_FOUND', 'no VM named "box"', { hint: 'see sandbox_list' }));
  assert.equal(result.isError, true);
  assert.deepEqual(result.content, [{ type: 'text', text: 'error[ERR_NOT_FOUND]: no VM named "box"\nhint: see sandbox_list' }]);
  assert.deepEqual(result.structuredContent, { error: { code: 'ERR_NOT_FOUND', message: 'no VM named "box"', hint: 'see sandbox_list' } });
  // Anything else is an internal error, never a thrown protocol failure.
  assert.match((failed(new Error('boom')).content[0] as { text: string }).text, /^error\[ERR_INTERNAL\]/);
});
