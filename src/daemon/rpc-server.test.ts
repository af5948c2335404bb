import assert from 'node:assert/strict';
import { Duplex, Writable } from 'node:stream';
import { describe, test } from 'node:test';

import { pino } from 'pino';

import { methods, type MethodKey } from '../rpc/methods.js';
import { withCheckedParams } from './params.js';
import { RpcServer, type DaemonHandlers } from './rpc-server.js';
import { StreamHub } from './stream-hub.js';

interface Reply {
  id: unknown;
  result?: unknown;
  error?: { code: number; message: string; data?: { code?: string } };
}

type ReplyError = NonNullable<Reply['error']>;

function errorOf(reply: Reply): ReplyError {
  assert.ok(reply.error !== undefined, `an error reply: ${JSON.stringify(reply)}`);
  return reply.error;
}

function frame(message: unknown): Buffer {
  const bytes = Buffer.from(JSON.stringify(message), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${bytes.length}\r\n\r\n`, 'ascii'), bytes]);
}

const request = (id: number, method: string, params?: unknown): Buffer => frame({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

/**
 * An RpcServer serving one in-memory connection: the test pushes the
 * client's bytes and reads the server's replies. Handlers answer at once with
 * their method's key, behind the same param checks as the daemon's.
 */
function serving(): {
  client: Duplex;
  send: (bytes: Buffer | string) => void;
  reply: (id: unknown) => Promise<Reply>;
  calls: MethodKey[];
  logged: (msg: string) => Promise<Record<string, unknown>>;
} {
  const calls: MethodKey[] = [];
  const table = Object.fromEntries(
    (Object.keys(methods) as MethodKey[]).map((key) => [
      key,
      () => {
        calls.push(key);
        return Promise.resolve({ key });
      },
    ]),
  );
  const lines: Record<string, unknown>[] = [];
  const lineWaiters: (() => void)[] = [];
  const log = pino(
    { level: 'debug' },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
        for (const wake of lineWaiters.splice(0)) wake();
        done();
      },
    }),
  );
  const server = new RpcServer(withCheckedParams(table as unknown as DaemonHandlers), log, new StreamHub(log));

  let written = Buffer.alloc(0);
  const replies: Reply[] = [];
  const replyWaiters: (() => void)[] = [];
  const client = new Duplex({
    read() {
      // Bytes are pushed by `send`.
    },
    write(chunk: Buffer, _encoding, done) {
      written = Buffer.concat([written, chunk]);
      for (;;) {
        const headerEnd = written.indexOf('\r\n\r\n');
        const length = /Content-Length: (\d+)/.exec(written.subarray(0, Math.max(headerEnd, 0)).toString('ascii'))?.[1];
        if (headerEnd < 0 || length === undefined || written.length < headerEnd + 4 + Number(length)) break;
        replies.push(JSON.parse(written.subarray(headerEnd + 4, headerEnd + 4 + Number(length)).toString('utf8')) as Reply);
        written = written.subarray(headerEnd + 4 + Number(length));
      }
      for (const wake of replyWaiters.splice(0)) wake();
      done();
    },
  });
  server.serveConnection(client);

  const until = async <T>(find: () => T | undefined, waiters: (() => void)[]): Promise<T> => {
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      await new Promise<void>((resolve) => waiters.push(resolve));
    }
  };
  return {
    client,
    send: (bytes) => client.push(bytes),
    reply: (id) => until(() => replies.find((r) => r.id === id), replyWaiters),
    calls,
    logged: (msg) => until(() => lines.find((line) => line.msg === msg), lineWaiters),
  };
}

describe('rpc server', () => {
  test('params left out are checked as {}; positional params are refused; unknown methods are named short', async () => {
    const s = serving();
    s.send(Buffer.concat([request(1, 'vm.show'), request(2, 'vm.delete', [{ ref: 'box' }]), request(3, 'x'.repeat(1024 * 1024), {}), request(4, 'ping', {})]));
    const [missing, positional, unknown, handlerKey] = (await Promise.all([s.reply(1), s.reply(2), s.reply(3), s.reply(4)])).map(errorOf) as [
      ReplyError,
      ReplyError,
      ReplyError,
      ReplyError,
    ];
    assert.equal(missing.data?.code, 'ERR_INVALID_ARGUMENT');
    assert.match(missing.message, /^param "ref" is required$/);
    assert.equal(positional.data?.code, 'ERR_INVALID_ARGUMENT');
    assert.match(positional.message, /vm\.delete takes named params \(a JSON object\), got an array/);
    assert.equal(unknown.code, -32601);
    assert.ok(unknown.message.length < 200, 'the name is not echoed whole');
    assert.match(unknown.message, /\(1048576 characters\)/);
    assert.equal(handlerKey.code, -32601, 'a handler key is not a method name');
    assert.deepEqual(s.calls, []);
    assert.deepEqual((await (s.send(request(5, 'daemon.ping')), s.reply(5))).result, { key: 'ping' });
  });

  test('a body that is not JSON and a message that is not a request are answered, and the connection goes on', async () => {
    const s = serving();
    s.send('Content-Length: 3\r\n\r\n{x}');
    s.send(frame({ jsonrpc: '2.0', id: 7, params: {} }));
    s.send(request(8, 'daemon.ping', {}));
    assert.equal(errorOf(await s.reply(null)).code, -32700);
    assert.equal(errorOf(await s.reply(7)).code, -32600);
    assert.deepEqual((await s.reply(8)).result, { key: 'ping' });
  });

  test('broken framing closes the connection, after answering what came before', async () => {
    const s = serving();
    const closed = new Promise((resolve) => s.client.once('close', resolve));
    s.send(Buffer.concat([Buffer.from('Content-Length: 1\r\n\r\n{'), Buffer.from('Content-Length: abc\r\n\r\n'), request(1, 'daemon.ping', {})]));
    await closed;
    assert.equal(errorOf(await s.reply(null)).code, -32700);
    assert.deepEqual(s.calls, []);
  });

  test('a request cancelled while still queued never runs', async () => {
    const s = serving();
    // One chunk: the cancel is read before the request is dispatched (vscode-jsonrpc dispatches from a queue).
    s.send(Buffer.concat([request(1, 'vm.show', { ref: 'box' }), frame({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 1 } })]));
    const error = errorOf(await s.reply(1));
    assert.equal(error.data?.code, 'ERR_CANCELLED');
    assert.match(error.message, /cancelled by the client/);
    assert.deepEqual(s.calls, []);
  });

  test('a request whose client went away before it was dispatched never runs', async () => {
    const s = serving();
    // Let the connection start reading, so the request below is read as soon as it is pushed.
    await new Promise((resolve) => setImmediate(resolve));
    s.send(request(1, 'vm.show', { ref: 'box' }));
    await new Promise<void>((resolve) => {
      process.nextTick(resolve);
    });
    // The close is seen on the next tick, the dispatch only on the next turn of the event loop.
    s.client.destroy();
    const outcome = await Promise.race([s.logged('request cancelled'), s.logged('request finished')]);
    assert.equal(outcome.msg, 'request cancelled');
    assert.equal(outcome.reason, 'client disconnected');
    assert.deepEqual(s.calls, []);
  });
});
