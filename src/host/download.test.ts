import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { cachedDownload, fetchBytes } from './download.js';

/**
 * Downloads against a real HTTP server on 127.0.0.1 that misbehaves the way
 * a broken mirror does. Deadlines are injected as a few ms; a test never
 * waits on the defaults.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-download-'));
const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  rmSync(root, { recursive: true, force: true });
});

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const BODY = Buffer.alloc(4096, 'x');
const BODY_SHA = createHash('sha256').update(BODY).digest('hex');

/** Accepts the request and never answers. */
const silent: RequestListener = () => undefined;

/** Sends the headers and the first part of the body, then nothing more. */
const stalling: RequestListener = (_req, res) => {
  res.writeHead(200, { 'content-length': String(BODY.length) });
  res.write(BODY.subarray(0, 1000));
};

const isCode =
  (code: string, message?: RegExp) =>
  (error: unknown): boolean =>
    error instanceof BangerError && error.code === code && (message === undefined || message.test(error.message));

test('a server that never sends headers fails the download with ERR_DOWNLOAD_FAILED and leaves no file', async () => {
  const base = await serve(silent);
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(
    cachedDownload(cache, `${base}/pool/a.deb`, BODY_SHA, { responseTimeoutMs: 20 }),
    (error: unknown) => isCode('ERR_DOWNLOAD_FAILED', /no response within 20 ms/)(error) && ((error as BangerError).hint ?? '').includes('127.0.0.1'),
  );
  assert.deepEqual(readdirSync(cache), []);
  await assert.rejects(fetchBytes(`${base}/dists/x/InRelease`, { responseTimeoutMs: 20 }), isCode('ERR_DOWNLOAD_FAILED', /no response/));
});

test('a server that stalls mid-body fails the download and leaves no partial file', async () => {
  const base = await serve(stalling);
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(
    cachedDownload(cache, `${base}/pool/a.deb`, BODY_SHA, { stallTimeoutMs: 20 }),
    isCode('ERR_DOWNLOAD_FAILED', /stalled: no data for 20 ms after 1000 bytes/),
  );
  assert.deepEqual(readdirSync(cache), []);
  await assert.rejects(fetchBytes(`${base}/dists/x/InRelease`, { stallTimeoutMs: 20 }), isCode('ERR_DOWNLOAD_FAILED', /stalled/));
});

test("the caller's cancel wins over the deadlines and still leaves no partial file", async () => {
  let requested!: () => void;
  const arrived = new Promise<void>((resolve) => (requested = resolve));
  const base = await serve((req, res) => {
    stalling(req, res);
    requested();
  });
  const cache = mkdtempSync(join(root, 'cache-'));
  const controller = new AbortController();
  const pending = cachedDownload(cache, `${base}/pool/a.deb`, BODY_SHA, { signal: controller.signal });
  await arrived;
  controller.abort(new BangerError('ERR_CANCELLED', 'interrupted'));
  await assert.rejects(pending, isCode('ERR_CANCELLED', /interrupted/));
  assert.deepEqual(readdirSync(cache), []);
});

test('a file whose sha256 differs from the index is refused and not cached', async () => {
  const base = await serve((_req, res) => res.end(Buffer.alloc(4096, 'y')));
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(cachedDownload(cache, `${base}/pool/a.deb`, BODY_SHA), isCode('ERR_VERIFY_FAILED', new RegExp(`expected ${BODY_SHA}`)));
  assert.deepEqual(readdirSync(cache), []);
  assert.equal(existsSync(join(cache, `sha256-${BODY_SHA}`)), false);
});

test('an HTTP error is ERR_DOWNLOAD_FAILED with the status', async () => {
  const base = await serve((_req, res) => {
    res.statusCode = 404;
    res.end('gone');
  });
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(cachedDownload(cache, `${base}/pool/a.deb`, BODY_SHA), isCode('ERR_DOWNLOAD_FAILED', /HTTP 404/));
  assert.deepEqual(readdirSync(cache), []);
});
