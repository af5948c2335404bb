import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { Output } from './output.js';

function capture(options: { json: boolean; verbose: boolean }): { out: Output; stdout: () => string; stderr: () => string } {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void): Writable =>
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        append(chunk.toString());
        callback();
      },
    });
  const out = new Output(
    options,
    sink((s) => (stdout += s)),
    sink((s) => (stderr += s)),
  );
  return { out, stdout: () => stdout, stderr: () => stderr };
}

const failure = new BangerError('ERR_VM_NOT_RUNNING', 'vm box is not running', { hint: 'banger vm start box', opId: 'op_123' });

test('errors show code, message and hint; no stack or op id without --verbose', () => {
  const c = capture({ json: false, verbose: false });
  c.out.error(failure);
  assert.equal(c.stderr(), 'error[ERR_VM_NOT_RUNNING]: vm box is not running\nhint: banger vm start box\n');
  assert.equal(c.stdout(), '');
});

test('--verbose adds the op id and a stack', () => {
  const c = capture({ json: false, verbose: true });
  c.out.error(failure);
  assert.match(c.stderr(), /^op: op_123 \(banger daemon logs --op op_123\)$/m);
  assert.match(c.stderr(), /at /);
});

test('unexpected errors always show their stack: they are bugs', () => {
  const c = capture({ json: false, verbose: false });
  c.out.error(new TypeError('cannot read x'));
  assert.match(c.stderr(), /^error\[ERR_INTERNAL\]: cannot read x$/m);
  assert.match(c.stderr(), /TypeError: cannot read x\n\s+at /);
});

test('--json errors are one JSON object on stdout', () => {
  const c = capture({ json: true, verbose: false });
  c.out.error(failure);
  assert.deepEqual(JSON.parse(c.stdout()), {
    error: { code: 'ERR_VM_NOT_RUNNING', message: 'vm box is not running', hint: 'banger vm start box', opId: 'op_123' },
  });
});

test('results print the human rendering, or the data with --json', () => {
  const human = capture({ json: false, verbose: false });
  human.out.result({ n: 1 }, (d) => `n is ${d.n}`);
  assert.equal(human.stdout(), 'n is 1\n');
  const json = capture({ json: true, verbose: false });
  json.out.result({ n: 1 }, () => 'ignored');
  assert.deepEqual(JSON.parse(json.stdout()), { n: 1 });
});
