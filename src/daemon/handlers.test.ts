import assert from 'node:assert/strict';
import { test } from 'node:test';

import { resolveLayout } from '../config/paths.js';
import { BangerError } from '../rpc/errors.js';
import { methods } from '../rpc/methods.js';
import { defaultConfig } from '../config/schema.js';
import { QemuDriver } from '../vmm/qemu/qemu-driver.js';
import { DriverRegistry } from '../vmm/registry.js';
import { openStore } from '../store/database.js';
import { createHandlers } from './handlers.js';
import { createServices } from './services.js';
import { createDaemonLogger } from './logger.js';
import { vmDefaultsReader } from './vm-defaults.js';
import { StreamHub } from './stream-hub.js';

const layout = resolveLayout({ env: {}, uid: 1000, home: '/home/test' });

const services = createServices({
  layout,
  store: openStore(':memory:'),
  config: defaultConfig(),
  env: {},
  drivers: new DriverRegistry(new QemuDriver({ binary: '/usr/bin/qemu-system-x86_64', accel: 'tcg' })),
  log: createDaemonLogger('/dev/null'),
});

function handlers(requestShutdown: (reason: string) => void = () => undefined): ReturnType<typeof createHandlers> {
  return createHandlers({
    layout,
    ...services,
    streams: new StreamHub(createDaemonLogger('/dev/null')),
    vmDefaults: vmDefaultsReader(layout, '/home/test', {}),
    startedAt: new Date(),
    inFlight: () => 1,
    requestShutdown,
  });
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
