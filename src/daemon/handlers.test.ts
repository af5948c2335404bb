import assert from 'node:assert/strict';
import { test } from 'node:test';

import { resolveLayout } from '../config/paths.js';
import { BangerError } from '../rpc/errors.js';
import { methods } from '../rpc/methods.js';
import { ImageService } from '../services/image/image-service.js';
import { KernelService } from '../services/kernel/kernel-service.js';
import { ImagesRepo } from '../store/images-repo.js';
import { openStore } from '../store/database.js';
import { KernelsRepo } from '../store/kernels-repo.js';
import { createHandlers } from './handlers.js';
import { createDaemonLogger } from './logger.js';

const layout = resolveLayout({ env: {}, uid: 1000, home: '/home/test' });

const store = openStore(':memory:');
const kernels = new KernelService({ layout, kernels: new KernelsRepo(store), mirror: 'http://deb.debian.org/debian', env: {} });
const images = new ImageService({ layout, images: new ImagesRepo(store), kernels, mirror: 'http://deb.debian.org/debian' });

function handlers(requestShutdown: (reason: string) => void = () => undefined): ReturnType<typeof createHandlers> {
  return createHandlers({ layout, kernels, images, startedAt: new Date(), inFlight: () => 1, requestShutdown });
}

test('every method in the table has a handler, and no handler lacks a method', () => {
  assert.deepEqual(Object.keys(handlers()).sort(), Object.keys(methods).sort());
  const names = Object.values(methods).map((m) => m.name);
  assert.equal(new Set(names).size, names.length, 'method names are unique');
});

const ctx = {
  opId: 'op_test',
  signal: new AbortController().signal,
  log: createDaemonLogger('/dev/null'),
  progress: () => undefined,
};

test('ping reports this process and its paths', async () => {
  const ping = await handlers().ping({}, ctx);
  assert.equal(ping.pid, process.pid);
  assert.equal(ping.socketPath, layout.socketPath);
  assert.equal(ping.inFlight, 1);
});

test('shutdown asks the daemon to stop', async () => {
  const reasons: string[] = [];
  await handlers((r) => reasons.push(r)).shutdown({}, ctx);
  assert.deepEqual(reasons, ['client request']);
});

test('sleep validates its params', async () => {
  for (const bad of [{}, { ms: -1 }, { ms: 1.5 }, { ms: '10' }, { ms: 10 * 60 * 1000 + 1 }]) {
    await assert.rejects(handlers().sleep(bad as { ms: number }, ctx), (e: unknown) => e instanceof BangerError && e.code === 'ERR_INVALID_ARGUMENT');
  }
});

test('sleep stops as soon as its request is cancelled', async () => {
  const controller = new AbortController();
  const pending = handlers().sleep({ ms: 60_000 }, { ...ctx, signal: controller.signal });
  controller.abort(new BangerError('ERR_CANCELLED', 'client disconnected'));
  await assert.rejects(pending);
});
