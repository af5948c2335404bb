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
    registry: { insecure: [], credentials: () => undefined, sshBundle: () => Promise.resolve([]) },
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
  assert.deepEqual(existsSync(imagesDir) ? readdirSync(imagesDir) : [], []);
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
  assert.deepEqual(existsSync(imagesDir) ? readdirSync(imagesDir) : [], []);
});

test('unknown catalog names are a clear error', async () => {
  const { service } = setup(tinyTree);
  await assert.rejects(
    service.pull('three', ctx()),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_NOT_FOUND' && (e.hint ?? '').includes('catalog images: one, two'),
  );
});

/** A caller with its own cancel and a record of the progress it was sent. */
function caller(): { ctx: OpContext; cancel: (why: string) => void; stages: string[] } {
  const controller = new AbortController();
  const stages: string[] = [];
  return {
    ctx: { ...ctx(), signal: controller.signal, progress: (stage) => stages.push(stage) },
    cancel: (why) => {
      controller.abort(new BangerError('ERR_CANCELLED', why));
    },
    stages,
  };
}

/**
 * A build that waits for the test to let it finish, or fails at once when its
 * own signal aborts (as mmdebstrap's does). `started` gives its signal.
 */
function gatedBuild(): { build: RootBuilder; started: Promise<AbortSignal>; finish: () => void } {
  let finish!: () => void;
  const gate = new Promise<void>((resolve) => (finish = resolve));
  let onStart!: (signal: AbortSignal) => void;
  const started = new Promise<AbortSignal>((resolve) => (onStart = resolve));
  const build: RootBuilder = async (e, target, h, c) => {
    onStart(c.signal);
    await new Promise<void>((resolve, reject) => {
      void gate.then(resolve);
      c.signal.addEventListener('abort', () => {
        reject(c.signal.reason instanceof Error ? c.signal.reason : new Error('aborted'));
      });
    });
    await tinyTree(e, target, h, c);
  };
  return { build, started, finish };
}

/** Whether `promise` has settled once pending callbacks have run (a cancel answers without waiting on anything). */
async function settledNow(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  const settle = (): void => {
    settled = true;
  };
  promise.then(settle, settle);
  await new Promise((resolve) => setImmediate(resolve));
  return settled;
}

const isCancel = (why: string) => (error: unknown) => error instanceof BangerError && error.code === 'ERR_CANCELLED' && error.message === why;

test("a joiner's cancel rejects its own pull at once; the build goes on for the first caller", async () => {
  const gated = gatedBuild();
  const { service } = setup(gated.build);
  const leader = caller();
  const joiner = caller();
  const first = service.pull('one', leader.ctx);
  const second = service.pull('one', joiner.ctx);
  assert.deepEqual(joiner.stages, ['wait']);
  const buildSignal = await gated.started;
  joiner.cancel('joiner interrupted');
  assert.equal(await settledNow(second), true, "the joiner's pull answers its cancel without waiting for the build");
  await assert.rejects(second, isCancel('joiner interrupted'));
  assert.equal(buildSignal.aborted, false);
  gated.finish();
  const { image } = await first;
  assert.deepEqual(
    service.list().map((i) => i.id),
    [image.id],
  );
});

test("the first caller's cancel does not fail a joiner: the build finishes and the joiner gets the image", async () => {
  const gated = gatedBuild();
  const { service } = setup(gated.build);
  const leader = caller();
  const joiner = caller();
  const first = service.pull('one', leader.ctx);
  const second = service.pull('one', joiner.ctx);
  const buildSignal = await gated.started;
  leader.cancel('leader interrupted');
  await assert.rejects(first, isCancel('leader interrupted'));
  assert.equal(buildSignal.aborted, false);
  gated.finish();
  const { image, pulled } = await second;
  assert.equal(pulled, true);
  assert.equal(service.find('one').id, image.id);
  assert.ok(existsSync(image.spec.rootfs));
});

test('when every caller has cancelled, the build is cancelled and leaves nothing', async () => {
  const gated = gatedBuild();
  const { service, imagesDir } = setup(gated.build);
  const a = caller();
  const b = caller();
  const first = service.pull('one', a.ctx);
  const second = service.pull('one', b.ctx);
  const buildSignal = await gated.started;
  a.cancel('a interrupted');
  await assert.rejects(first, isCancel('a interrupted'));
  assert.equal(buildSignal.aborted, false);
  b.cancel('b interrupted');
  assert.equal(buildSignal.aborted, true);
  // The last caller's answer comes after the aborted build cleaned up.
  await assert.rejects(second, isCancel('b interrupted'));
  assert.deepEqual(service.list(), []);
  assert.deepEqual(existsSync(imagesDir) ? readdirSync(imagesDir) : [], []);
});
