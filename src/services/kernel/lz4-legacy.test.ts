import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeLz4Legacy, Lz4FormatError } from './lz4-legacy.js';

const MAGIC = Buffer.from([0x02, 0x21, 0x4c, 0x18]);

function stream(...blocks: Buffer[]): Buffer {
  return Buffer.concat([MAGIC, ...blocks.flatMap((b) => [Buffer.from(Uint32Array.of(b.length).buffer), b])]);
}

test('a literals-only block decodes to its literals', () => {
  // token 0x50: 5 literals, no match (last sequence)
  const block = Buffer.concat([Buffer.from([0x50]), Buffer.from('hello')]);
  assert.equal(decodeLz4Legacy(stream(block), 5).toString(), 'hello');
});

test('an overlapping match repeats earlier output (run-length style)', () => {
  // "ab" then a match of length 4+2=6 at offset 2 -> "abababab", then literal "!" to end.
  const block = Buffer.from([0x22, 0x61, 0x62, 0x02, 0x00, 0x10, 0x21]);
  assert.equal(decodeLz4Legacy(stream(block), 9).toString(), 'abababab!');
});

test('long literal runs use extension bytes', () => {
  const literals = Buffer.alloc(300, 0x78);
  // 15 + 255 + 30 = 300
  const block = Buffer.concat([Buffer.from([0xf0, 255, 30]), literals]);
  assert.deepEqual(decodeLz4Legacy(stream(block), 300), literals);
});

test('several blocks concatenate', () => {
  const a = Buffer.concat([Buffer.from([0x30]), Buffer.from('abc')]);
  const b = Buffer.concat([Buffer.from([0x30]), Buffer.from('def')]);
  assert.equal(decodeLz4Legacy(stream(a, b), 6).toString(), 'abcdef');
});

test('bad input is rejected, not decoded into garbage', () => {
  assert.throws(() => decodeLz4Legacy(Buffer.from('not lz4 at all'), 10), Lz4FormatError);
  // match offset 9 with only 2 bytes of output so far
  const badOffset = Buffer.from([0x22, 0x61, 0x62, 0x09, 0x00, 0x10, 0x21]);
  assert.throws(() => decodeLz4Legacy(stream(badOffset), 9), /offset out of range/);
  const short = Buffer.concat([Buffer.from([0x50]), Buffer.from('hello')]);
  assert.throws(() => decodeLz4Legacy(stream(short), 6), /expected 6/);
});
