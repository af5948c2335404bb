import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';

import { connectGuest } from './ssh-client.js';

/**
 * A guest whose SSH server dies as it accepts (seen with dropbear failing to
 * load its libraries in a Debian image) must make each attempt fail cleanly,
 * with nothing left to crash the daemon as an unhandled 'error' event (ssh2
 * can report a second error for one attempt; the e2e Debian image case is
 * where that was seen to kill bangerd).
 */
test('a connection reset before the SSH banner rejects once and raises nothing unhandled', async () => {
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    socket.resetAndDestroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown): void => {
    uncaught.push(error);
  };
  process.on('uncaughtException', onUncaught);
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      await assert.rejects(connectGuest({ host: '127.0.0.1', port, privateKey: Buffer.alloc(0), knownHosts: '/nonexistent' }, 2000));
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    server.close();
  }
});
