import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  decodeResize,
  encodeFrames,
  encodeResize,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_PAYLOAD,
  newStreamToken,
  STREAM_FIRST_BYTE,
  STREAM_TOKEN_PATTERN,
  streamHeader,
} from './stream.js';

test('frames survive any split of the byte stream', () => {
  const payloads = [Buffer.from('hello'), Buffer.alloc(0), Buffer.from([0, 1, 2, 255]), Buffer.alloc(70_000, 7)];
  const wire = Buffer.concat([
    ...encodeFrames(FrameKind.stdout, payloads[0]),
    ...encodeFrames(FrameKind.stdinEnd),
    ...encodeFrames(FrameKind.stderr, payloads[2]),
    ...encodeFrames(FrameKind.stdin, payloads[3]),
  ]);
  for (const size of [1, 3, 5, 4096, wire.length]) {
    const decoder = new FrameDecoder();
    const frames = [];
    for (let i = 0; i < wire.length; i += size) frames.push(...decoder.push(wire.subarray(i, i + size)));
    assert.deepEqual(
      frames.map((f) => [f.kind, f.payload.toString('hex')]),
      [
        [FrameKind.stdout, payloads[0]?.toString('hex')],
        [FrameKind.stdinEnd, ''],
        [FrameKind.stderr, payloads[2]?.toString('hex')],
        [FrameKind.stdin, payloads[3]?.toString('hex')],
      ],
      `chunks of ${size}`,
    );
    assert.equal(decoder.buffered, 0);
  }
});

test('large payloads are split into frames within the limit', () => {
  const big = Buffer.alloc(MAX_FRAME_PAYLOAD * 2 + 10, 1);
  const parts = encodeFrames(FrameKind.stdout, big);
  assert.equal(parts.length, 6, 'three header + body pairs');
  const frames = new FrameDecoder().push(Buffer.concat(parts));
  assert.deepEqual(
    frames.map((f) => f.payload.length),
    [MAX_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD, 10],
  );
});

test('an unknown kind or an oversized length is a protocol error', () => {
  assert.throws(() => new FrameDecoder().push(Buffer.from([0x7f, 0, 0, 0, 0])), /unknown frame kind/);
  assert.throws(() => new FrameDecoder().push(Buffer.from([FrameKind.stdout, 0xff, 0xff, 0xff, 0xff])), /exceeds the limit/);
});

test('header, token and resize encoding', () => {
  const token = newStreamToken();
  assert.match(token, STREAM_TOKEN_PATTERN);
  assert.notEqual(newStreamToken(), token);
  const header = streamHeader(token);
  assert.equal(header[0], STREAM_FIRST_BYTE, 'tells a stream from JSON-RPC (Content-Length) by its first byte');
  assert.equal(header.toString(), `BANGER-STREAM/1 ${token}\n`);
  assert.deepEqual(decodeResize(encodeResize(132, 43)), { cols: 132, rows: 43 });
  assert.deepEqual(decodeResize(encodeResize(0, 100_000)), { cols: 1, rows: 0xffff }, 'clamped');
  assert.equal(decodeResize(Buffer.alloc(3)), undefined);
});
