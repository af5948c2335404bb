import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { after, before, describe, test } from 'node:test';

import { StreamClient } from '../cli/stream-client.js';
import { BangerError } from '../rpc/errors.js';
import { encodeFrames, FrameKind, newStreamToken, streamHeader } from '../rpc/stream.js';
import { createDaemonLogger } from './logger.js';
import { StreamHub } from './stream-hub.js';

/** The stream side of the daemon socket, over a real unix socket with the real CLI client. */
describe('stream hub', { timeout: 20_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'banger-hub-'));
  const socketPath = join(dir, 'hub.sock');
  const hub = new StreamHub(createDaemonLogger('/dev/null'));
  let server: Server;

  before(async () => {
    server = createServer((socket) => {
      socket.once('data', (first: Buffer) => {
        socket.pause();
        hub.accept(socket, first);
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  });
  after(() => {
    hub.closeAll();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A client whose sinks are read as data arrives (as a terminal would). */
  function client(): { out: () => string; err: () => string; notices: string[]; open: () => Promise<StreamClient> } {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const notices: string[] = [];
    return { out: () => out, err: () => err, notices, open: () => StreamClient.open(socketPath, { stdout, stderr, onNotice: (t) => notices.push(t) }) };
  }

  test('a stream that arrives first waits for its request; bytes flow both ways; end flushes everything', async () => {
    const c = client();
    const stream = await c.open();
    stream.stdin(Buffer.from('typed before the request\n'));
    stream.signal('INT');
    stream.endStdin();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const claimed = await hub.claim(stream.token, new AbortController().signal);
    const signals: string[] = [];
    claimed.onSignal((name) => signals.push(name));
    assert.deepEqual(signals, ['INT'], 'a signal sent before anyone listened is delivered when they do');
    assert.equal(await text(claimed.stdin), 'typed before the request\n');
    claimed.notice('heads up');
    for (let i = 0; i < 200; i++) claimed.stdout.write(Buffer.alloc(10_000, 0x61));
    claimed.stderr.write('err\n');
    await claimed.end();
    await stream.done;
    assert.equal(c.out().length, 2_000_000, 'every stdout byte arrived before the stream ended');
    assert.equal(c.err(), 'err\n');
    assert.deepEqual(c.notices, ['heads up']);
  });

  test('a request that claims first waits for the stream; resize and signals reach listeners', async () => {
    const token = newStreamToken();
    const claim = hub.claim(token, new AbortController().signal);
    const socket = connect(socketPath);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(Buffer.concat([streamHeader(token), ...encodeFrames(FrameKind.stdinEnd)]));
    const claimed = await claim;
    const events: string[] = [];
    claimed.onResize((cols, rows) => events.push(`${cols}x${rows}`));
    claimed.onSignal((name) => events.push(name));
    socket.write(Buffer.concat([...encodeFrames(FrameKind.resize, Buffer.from([0, 100, 0, 30])), ...encodeFrames(FrameKind.signal, Buffer.from('TERM'))]));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(events, ['100x30', 'TERM']);
    assert.equal(await text(claimed.stdin), '');
    socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(claimed.gone.aborted, true, 'the client going away is noticed');
  });

  test('garbage headers are dropped; bad tokens and cancelled claims are refused', async () => {
    const socket = connect(socketPath);
    await new Promise((resolve) => socket.once('connect', resolve));
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.write('BANGER-STREAM/1 not-a-token\n');
    await closed;

    await assert.rejects(hub.claim('xyz', new AbortController().signal), (e: unknown) => e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT');
    const controller = new AbortController();
    const claim = hub.claim(newStreamToken(), controller.signal);
    controller.abort(new BangerError('ERR_CANCELLED', 'client went away'));
    await assert.rejects(claim, /client went away/);
  });

  test('a slow client pushes back on the writer instead of piling bytes up in the daemon', async () => {
    const token = newStreamToken();
    const socket: Socket = connect(socketPath);
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(streamHeader(token));
    socket.pause(); // the client reads nothing
    const claimed = await hub.claim(token, new AbortController().signal);
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      if (!claimed.stdout.write(Buffer.alloc(64 * 1024))) break;
      accepted++;
    }
    assert.ok(accepted < 400, `the writer was told to wait after ${accepted} chunks`);
    socket.destroy();
  });
});
