import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { pino } from 'pino';

import { resolveLayout } from '../../config/paths.js';
import { BangerError } from '../../rpc/errors.js';
import { openStore } from '../../store/database.js';
import { ImagesRepo } from '../../store/images-repo.js';
import { KernelsRepo } from '../../store/kernels-repo.js';
import { KernelService } from '../kernel/kernel-service.js';
import type { OpContext } from '../op-context.js';
import type { ImageCatalogEntry } from './catalog.js';
import { ImageService, type RootBuilder } from './image-service.js';

/**
 * ImageService's publishing rules with a fake root builder (the real one,
 * mmdebstrap, is exercised by test/integration/image.test.ts and
 * image-rootless.test.ts). The fake writes a tarball of a tiny tree; packing
 * it into ext4 is real.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-images-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const entry = (name: string): ImageCatalogEntry => ({ name, description: name, suite: 'bookworm', packages: [], kernel: 'k' });

function ctx(): OpContext {
  return { opId: 'op_test', signal: new AbortController().signal, log: pino({ level: 'silent' }), progress: () => undefined };
}

/** A service over a fresh store with kernel `k` already present (so pulls never touch the network). */
function setup(buildRoot: RootBuilder): { service: ImageService; imagesDir: string } {
  const dir = mkdtempSync(join(root, 'world-'));
  const layout = resolveLayout({ env: { XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache') }, uid: 0, home: dir });
  mkdirSync(layout.stateDir, { recursive: true });
  const store = openStore(layout.storePath);
  const kernelsRepo = new KernelsRepo(store);
  kernelsRepo.insert({ id: 'kern1', name: 'k', state: 'ready', source: 'import', version: null, spec: { modules: [], initHash: 'x' } });
  const kernels = new KernelService({ layout, kernels: kernelsRepo, mirror: 'http://unused', env: {} });
  const service = new ImageService({
    layout,
    images: new ImagesRepo(store),
    kernels,
    mirror: 'http://unused',
    buildRoot,
    catalog: [entry('one'), entry('two')],
  });
  return { service, imagesDir: layout.imagesDir };
}

const tinyTree: RootBuilder = (_entry, target) => {
  const tree = mkdtempSync(join(root, 'tree-'));
  mkdirSync(join(tree, 'etc'));
  writeFileSync(join(tree, 'etc', 'os-release'), 'ID=test\n');
  execFileSync('tar', ['-C', tree, '-cf', target, '.']);
  rmSync(tree, { recursive: true });
  return Promise.resolve();
};

test('pulls of different names run side by side', async () => {
  const started: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const { service } = setup(async (e, target, h, c) => {
    started.push(e.name);
    await gate;
    await tinyTree(e, target, h, c);
  });
  const pulls = [service.pull('one', ctx()), service.pull('two', ctx())];
  // Both builds start before either finishes: nothing serialises different names.
  for (let i = 0; i < 100 && started.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(started.sort(), ['one', 'two']);
  release();
  const results = await Promise.all(pulls);
  assert.deepEqual(results.map((r) => r.image.name).sort(), ['one', 'two']);
});

test('two pulls of one name build once and yield one image', async () => {
  let builds = 0;
  const { service } = setup(async (e, target, h, c) => {
    builds++;
    await new Promise((r) => setTimeout(r, 50));
    await tinyTree(e, target, h, c);
  });
  const [a, b] = await Promise.all([service.pull('one', ctx()), service.pull('one', ctx())]);
  assert.equal(builds, 1);
  assert.equal(a.image.id, b.image.id);
  assert.equal(service.list().length, 1);
  const again = await service.pull('one', ctx());
  assert.equal(again.pulled, false);
  assert.ok(existsSync(again.image.spec.rootfs));
});

test('a failed build leaves no image and no directory', async () => {
  const { service, imagesDir } = setup(async (_e, target) => {
    writeFileSync(target, 'half-built');
    await Promise.resolve();
    throw new BangerError('ERR_HOST_COMMAND_FAILED', 'mmdebstrap failed (exit 1): E: no network');
  });
  await assert.rejects(service.pull('one', ctx()), /mmdebstrap failed/);
  assert.deepEqual(service.list(), []);
  assert.deepEqual(readdirSync(imagesDir), []);
});

test('a cancelled build leaves nothing either', async () => {
  const { service, imagesDir } = setup(async (e, target, h, c) => {
    await tinyTree(e, target, h, c);
    await new Promise((r) => setTimeout(r, 20));
  });
  const controller = new AbortController();
  const pending = service.pull('one', { ...ctx(), signal: controller.signal });
  controller.abort(new BangerError('ERR_CANCELLED', 'client disconnected'));
  await assert.rejects(pending, /client disconnected/);
  assert.deepEqual(service.list(), []);
  assert.deepEqual(readdirSync(imagesDir), []);
});

test('unknown catalog names are a clear error', async () => {
  const { service } = setup(tinyTree);
  await assert.rejects(
    service.pull('three', ctx()),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_NOT_FOUND' && (e.hint ?? '').includes('catalog images: one, two'),
  );
});
