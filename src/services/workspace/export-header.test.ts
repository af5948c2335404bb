import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { test } from 'node:test';

import { parseNameStatus, readExportHeader } from './export-header.js';

const names = Buffer.from('M\0README.md\0A\0dir/new file é.txt\0D\0gone\0');
const patch = Buffer.from('diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-a\n+b\n');
const output = Buffer.concat([Buffer.from(`0123456789abcdef0123456789abcdef01234567\n${names.length}\n`), names, patch]);

test('the header is parsed and the patch passed on whole, however stdout is chunked', { timeout: 10_000 }, async () => {
  for (const size of [1, 7, 50, output.length]) {
    const stdout = new PassThrough();
    const received: Buffer[] = [];
    const out = new Writable({
      highWaterMark: 4,
      write: (chunk: Buffer, _encoding, callback) => {
        received.push(chunk);
        setImmediate(callback);
      },
    });
    const { done } = readExportHeader(stdout, out);
    for (let i = 0; i < output.length; i += size) stdout.write(output.subarray(i, i + size));
    stdout.end();
    const header = await done;
    assert.deepEqual(header, {
      base: '0123456789abcdef0123456789abcdef01234567',
      files: [
        { status: 'M', path: 'README.md' },
        { status: 'A', path: 'dir/new file é.txt' },
        { status: 'D', path: 'gone' },
      ],
      patchBytes: patch.length,
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(Buffer.concat(received).toString(), patch.toString(), `chunks of ${size}`);
  }
});

test('a script that stopped before its header yields undefined', async () => {
  const stdout = new PassThrough();
  const { done } = readExportHeader(stdout, new PassThrough());
  stdout.end('abc');
  assert.equal(await done, undefined);
});

test('name-status parsing ignores a trailing empty field', () => {
  assert.deepEqual(parseNameStatus(Buffer.from('T\0link\0')), [{ status: 'T', path: 'link' }]);
  assert.deepEqual(parseNameStatus(Buffer.alloc(0)), []);
});
