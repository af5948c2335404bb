import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';

import type { Message } from 'vscode-jsonrpc/node';

import { CheckedMessageReader, classify, contentLength, FramingError, MAX_CONTENT_LENGTH, MAX_HEADER_BYTES, type Refusal } from './message-reader.js';

function frame(body: string): Buffer {
  const bytes = Buffer.from(body, 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${bytes.length}\r\n\r\n`, 'ascii'), bytes]);
}

const ping = (id: number): string => JSON.stringify({ jsonrpc: '2.0', id, method: 'daemon.ping', params: {} });

/** A reader on an in-memory stream, and everything it reported. */
function reading(): {
  feed: (...chunks: (Buffer | string)[]) => Promise<void>;
  messages: Message[];
  refusals: Refusal[];
  errors: Error[];
  stream: PassThrough;
} {
  const stream = new PassThrough();
  const messages: Message[] = [];
  const refusals: Refusal[] = [];
  const errors: Error[] = [];
  const reader = new CheckedMessageReader(stream, (refusal) => refusals.push(refusal));
  reader.onError((error) => errors.push(error));
  reader.listen((message) => messages.push(message));
  const feed = async (...chunks: (Buffer | string)[]): Promise<void> => {
    for (const chunk of chunks) stream.write(chunk);
    // Stream events are emitted by the next turn of the event loop.
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { feed, messages, refusals, errors, stream };
}

const ids = (messages: Message[]): unknown[] => messages.map((m) => (m as { id?: unknown }).id);

describe('framing', () => {
  test('messages in one chunk, and a message split byte by byte, come out whole and in order', async () => {
    const r = reading();
    await r.feed(Buffer.concat([frame(ping(1)), frame(ping(2))]));
    const third = frame(ping(3));
    await r.feed(...[...third].map((byte) => Buffer.from([byte])));
    assert.deepEqual(ids(r.messages), [1, 2, 3]);
    assert.deepEqual(r.errors, []);
  });

  test('a large body in many chunks is delivered once', async () => {
    const r = reading();
    const body = JSON.stringify({ jsonrpc: '2.0', id: 'big', method: 'vm.show', params: { ref: 'x'.repeat(1024 * 1024) } });
    const bytes = frame(body);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 4096) chunks.push(bytes.subarray(at, at + 4096));
    await r.feed(...chunks, frame(ping(2)));
    assert.deepEqual(ids(r.messages), ['big', 2]);
  });

  test('header names are case-insensitive; other headers are ignored', async () => {
    const r = reading();
    const body = ping(1);
    await r.feed(`content-length: ${body.length}\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n${body}`);
    assert.deepEqual(ids(r.messages), [1]);
  });

  test('Content-Length is decimal digits up to the limit', () => {
    assert.equal(contentLength('Content-Length: 0'), 0);
    assert.equal(contentLength(`Content-Length:${MAX_CONTENT_LENGTH} `), MAX_CONTENT_LENGTH);
    for (const headers of [
      `Content-Length: ${MAX_CONTENT_LENGTH + 1}`,
      'Content-Length: 1000000000000000',
      'Content-Length: abc',
      'Content-Length: -5',
      'Content-Length: +5',
      'Content-Length: 5e2',
      'Content-Length: ',
      'Content-Length: 2\r\nContent-Length: 2',
      'Content-Type: application/json',
      '',
      'GET / HTTP/1.1\r\nHost: localhost',
      'Content-Length: 2\r\n: 2',
    ]) {
      assert.throws(() => contentLength(headers), FramingError, JSON.stringify(headers));
    }
  });

  test('broken framing is reported once and nothing after it is read', async () => {
    const r = reading();
    await r.feed(frame(ping(1)), 'Content-Length: abc\r\n\r\n{}', frame(ping(2)));
    assert.deepEqual(ids(r.messages), [1]);
    assert.deepEqual(
      r.errors.map((e) => e instanceof FramingError),
      [true],
    );
    assert.match(r.errors[0]?.message ?? '', /Content-Length is not a number/);
  });

  test('a Content-Length over the limit is refused from the header alone', async () => {
    const r = reading();
    await r.feed(`Content-Length: ${MAX_CONTENT_LENGTH + 1}\r\n\r\n`);
    assert.match(r.errors[0]?.message ?? '', /over the limit/);
  });

  test('a header section that never ends is refused once it passes the limit', async () => {
    const r = reading();
    await r.feed(`X-Padding: ${'a'.repeat(MAX_HEADER_BYTES - 20)}`);
    assert.equal(r.errors.length, 0, 'still within the limit: the rest may come');
    await r.feed('a'.repeat(100));
    assert.match(r.errors[0]?.message ?? '', /no end of headers/);
  });

  test('the end of the stream closes the reader', async () => {
    const stream = new PassThrough();
    const reader = new CheckedMessageReader(stream, () => undefined);
    let closed = false;
    reader.onClose(() => (closed = true));
    reader.listen(() => undefined);
    stream.destroy();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(closed, true);
  });
});

describe('bodies that are not requests are refused, and reading goes on', () => {
  test('a body that is not JSON, or empty, is a parse error (-32700, id null)', async () => {
    const r = reading();
    await r.feed(frame('{"jsonrpc": "2.0", "id": 1, '), frame(''), frame(ping(2)));
    assert.deepEqual(
      r.refusals.map((x) => [x.id, x.code]),
      [
        [null, -32700],
        [null, -32700],
      ],
    );
    assert.deepEqual(ids(r.messages), [2]);
    assert.deepEqual(r.errors, []);
  });

  const invalid = (id: string | number | null): { id: string | number | null; code: number } => ({ id, code: -32600 });
  const refusal = (value: unknown): unknown => {
    const checked = classify(value);
    return checked !== undefined && 'code' in checked ? { id: checked.id, code: checked.code } : checked;
  };

  test('a message that is not a request is an invalid request (-32600), with its id when it has a valid one', () => {
    assert.deepEqual(refusal(42), invalid(null));
    assert.deepEqual(refusal(null), invalid(null));
    assert.deepEqual(refusal('daemon.ping'), invalid(null));
    assert.deepEqual(refusal([{ jsonrpc: '2.0', id: 1, method: 'daemon.ping' }]), invalid(null));
    assert.deepEqual(refusal([]), invalid(null));
    assert.deepEqual(refusal({ jsonrpc: '2.0', id: { a: 1 }, method: 'daemon.ping' }), invalid(null));
    assert.deepEqual(refusal({ jsonrpc: '2.0', id: null, method: 'daemon.ping' }), invalid(null));
    assert.deepEqual(refusal({ jsonrpc: '2.0', id: true, method: 'daemon.ping' }), invalid(null));
    assert.deepEqual(refusal({ jsonrpc: '2.0', id: 7, params: {} }), invalid(7));
    assert.deepEqual(refusal({ jsonrpc: '2.0', id: 'x', method: 7 }), invalid('x'));
    assert.deepEqual(refusal({ jsonrpc: '2.0', method: ['vm.delete'] }), invalid(null));
    assert.deepEqual(refusal({ id: 7, method: 'daemon.ping' }), invalid(7));
    assert.deepEqual(refusal({ jsonrpc: '1.0', id: 7, method: 'daemon.ping' }), invalid(7));
  });

  test('requests and notifications pass; responses and cancellations naming no request are dropped', () => {
    const request = { jsonrpc: '2.0', id: 1, method: 'vm.show', params: ['positional', 'is', 'the', "server's", 'business'] };
    assert.equal(classify(request), request);
    const notification = { jsonrpc: '2.0', method: 'vm.frobnicate' };
    assert.equal(classify(notification), notification);
    const cancel = { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 3 } };
    assert.equal(classify(cancel), cancel);
    assert.equal(classify({ jsonrpc: '2.0', id: 9, result: 'ok' }), undefined);
    assert.equal(classify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'x' } }), undefined);
    for (const params of [undefined, null, [1], { id: { a: 1 } }, 'x']) {
      assert.equal(classify({ jsonrpc: '2.0', method: '$/cancelRequest', params }), undefined, JSON.stringify(params));
    }
  });

  test('refusal messages do not echo the input', async () => {
    const r = reading();
    await r.feed(frame(`{"${'x'.repeat(100_000)}`), frame(JSON.stringify({ jsonrpc: '2.0', id: 1, method: { long: 'y'.repeat(100_000) } })));
    assert.equal(r.refusals.length, 2);
    for (const { message } of r.refusals) assert.ok(message.length < 200, message.slice(0, 300));
  });
});
