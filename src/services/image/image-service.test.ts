import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { pino } from 'pino';

import { resolveLayout } from '../../config/paths.js';
import { BangerError } from '../../rpc/errors.js';
import { openStore } from '../../store/database.js';
import { ImagesRepo } from '../../store/images-repo.js';
import { KernelsRepo } from '../../store/kernels-repo.js';
import { KernelService } from '../kernel/kernel-service.js';
import type { OpContext } from '../op-context.js';
import { imageBundleManifest, writeBundle } from './bundle.js';
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

/** A service over a fresh store with kernels `k` and `k2` already present (so pulls never touch the network). */
function setup(buildRoot: RootBuilder, catalog: readonly ImageCatalogEntry[] = [entry('one'), entry('two')]): { service: ImageService; imagesDir: string } {
  const dir = mkdtempSync(join(root, 'world-'));
  const layout = resolveLayout({ env: { XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache') }, uid: 0, home: dir });
  mkdirSync(layout.stateDir, { recursive: true });
  const store = openStore(layout.storePath);
  const kernelsRepo = new KernelsRepo(store);
  kernelsRepo.insert({ id: 'kern1', name: 'k', state: 'ready', source: 'import', version: null, spec: { modules: [], initHash: 'x' } });
  kernelsRepo.insert({ id: 'kern2', name: 'k2', state: 'ready', source: 'import', version: null, spec: { modules: [], initHash: 'x' } });
  // The kernel catalog is empty: a bundle naming a kernel that is not here cannot be satisfied by a pull.
  const kernels = new KernelService({ layout, kernels: kernelsRepo, mirror: 'http://unused', env: {}, catalog: [] });
  const service = new ImageService({
    layout,
    images: new ImagesRepo(store),
    kernels,
    mirror: 'http://unused',
    buildRoot,
    catalog,
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

describe('bundles', () => {
  const tree = mkdtempSync(join(root, 'bundle-tree-'));
  mkdirSync(join(tree, 'etc'));
  writeFileSync(join(tree, 'etc', 'hostname'), 'bundled\n');
  const ext4 = join(root, 'bundled.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, ext4, '8M'], { stdio: 'pipe' });
  const ext4Bytes = readFileSync(ext4);
  const oci = { ref: 'docker.io/library/busybox:1', digest: `sha256:${'b'.repeat(64)}`, run: { env: ['A=1'], workingDir: '/srv', user: null } };

  /** Served bundles by URL path; `/fail` answers 500, `/cut` sends part of a body and hangs up. */
  const served = new Map<string, Buffer>();
  let requests = 0;
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((request, response) => {
      requests++;
      const body = served.get(request.url ?? '');
      if (request.url === '/cut.tar.zst') {
        response.writeHead(200, { 'content-length': 100_000 });
        response.write(Buffer.alloc(1000), () => {
          response.destroy();
        });
        return;
      }
      response.writeHead(body === undefined ? 500 : 200);
      response.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
  });

  /** Writes a bundle of the tiny ext4 whose manifest names `kernelRef`, serves it at /<file>, and returns its URL and sha256. */
  async function publish(file: string, kernelRef: string | null): Promise<{ url: string; sha256: string; path: string }> {
    const path = join(mkdtempSync(join(root, 'bundle-')), file);
    const manifest = imageBundleManifest('from-manifest', kernelRef, ext4Bytes.length, { rootfs: ext4, managed: true, sizeBytes: 0, oci, sshServer: 'banger' });
    const { sha256 } = await writeBundle(path, manifest, [{ name: 'rootfs.ext4', path: ext4 }], { force: false, signal: new AbortController().signal });
    served.set(`/${file}`, readFileSync(path));
    return { url: `${base}/${file}`, sha256, path };
  }

  const bundled = (name: string, bundle: { url: string; sha256: string }): ImageCatalogEntry => ({ ...entry(name), bundle });
  const noBuild: RootBuilder = () => Promise.reject(new Error('a bundle entry must not be built'));
  const dirEmpty = (dir: string): void => {
    assert.deepEqual(existsSync(dir) ? readdirSync(dir) : [], []);
  };
  const refused = (code: string, message: RegExp) => (error: unknown) => {
    assert.ok(error instanceof BangerError, String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
    return true;
  };

  test('a catalog entry that is a bundle is downloaded, unpacked and published with its spec; concurrent pulls join', async () => {
    const bundle = await publish('good.tar.zst', 'k2');
    const { service } = setup(noBuild, [bundled('bundled', bundle)]);
    const before = requests;
    const [a, b] = await Promise.all([service.pull('bundled', ctx()), service.pull('bundled', ctx())]);
    assert.equal(requests - before, 1, 'one download for two pulls of one name');
    assert.equal(a.image.id, b.image.id);
    const { image } = a;
    assert.equal(image.name, 'bundled', "the catalog entry's name, not the manifest's");
    assert.equal(image.source, 'catalog');
    assert.equal(image.kernelId, 'kern1', "the catalog entry's kernel (k), not the manifest's (k2)");
    assert.equal(image.spec.managed, true);
    assert.equal(image.spec.sizeBytes, ext4Bytes.length);
    assert.deepEqual(image.spec.oci, oci);
    assert.equal(image.spec.sshServer, 'banger');
    assert.ok(readFileSync(image.spec.rootfs).equals(ext4Bytes));
    assert.deepEqual(readdirSync(join(image.spec.rootfs, '..')), ['rootfs.ext4'], 'the downloaded bundle is not kept');
    assert.equal((await service.pull('bundled', ctx())).pulled, false);
  });

  test('--kernel overrides the kernel a catalog bundle names', async () => {
    const bundle = await publish('override.tar.zst', null);
    const { service } = setup(noBuild, [bundled('bundled', bundle)]);
    const { image } = await service.pull('bundled', ctx(), { kernel: 'k2' });
    assert.equal(image.kernelId, 'kern2');
  });

  test('a bundle by URL takes its name and kernel from the manifest unless told; one naming no kernel needs --kernel', async () => {
    const named = await publish('named.tar.zst', 'k2');
    const { service, imagesDir } = setup(noBuild);
    const { image } = await service.pull(named.url, ctx(), { sha256: named.sha256 });
    assert.equal(image.name, 'from-manifest');
    assert.equal(image.kernelId, 'kern2');
    assert.equal(image.source, 'bundle');

    const anonymous = await publish('anonymous.tar.zst', null);
    await assert.rejects(service.pull(anonymous.url, ctx(), { sha256: anonymous.sha256, name: 'other' }), refused('ERR_INVALID_ARGUMENT', /names no kernel/));
    assert.deepEqual(
      service.list().map((i) => i.name),
      ['from-manifest'],
    );
    assert.deepEqual(readdirSync(imagesDir), [image.id], 'nothing of the refused pull is left');
    const withKernel = await service.pull(anonymous.url, ctx(), { sha256: anonymous.sha256, name: 'other', kernel: 'k' });
    assert.equal(withKernel.image.kernelId, 'kern1');

    const unknownKernel = await publish('unknown-kernel.tar.zst', 'nosuch');
    await assert.rejects(
      service.pull(unknownKernel.url, ctx(), { sha256: unknownKernel.sha256, name: 'third' }),
      refused('ERR_NOT_FOUND', /kernel "nosuch", which is neither here nor in the kernel catalog/),
    );
    await assert.rejects(service.pull(named.url, ctx(), { sha256: named.sha256 }), refused('ERR_ALREADY_EXISTS', /"from-manifest" already exists/));
    await assert.rejects(service.pull(named.url, ctx()), refused('ERR_INVALID_ARGUMENT', /needs its sha256/));
  });

  test('a bundle file is pulled in place, its sha256 checked when given', async () => {
    const { path, sha256 } = await publish('file.tar.zst', 'k');
    const { service, imagesDir } = setup(noBuild);
    await assert.rejects(service.pull(path, ctx(), { sha256: 'a'.repeat(64) }), refused('ERR_VERIFY_FAILED', new RegExp(`has sha256 ${sha256}`)));
    dirEmpty(imagesDir);
    const { image } = await service.pull(path, ctx());
    assert.ok(readFileSync(image.spec.rootfs).equals(ext4Bytes));
    assert.ok(existsSync(path), "the user's bundle stays");
    assert.equal(createHash('sha256').update(readFileSync(path)).digest('hex'), sha256);
  });

  test('a sha256 mismatch is refused with no row and no directory left', async () => {
    const bundle = await publish('mismatch.tar.zst', 'k');
    const { service, imagesDir } = setup(noBuild, [bundled('bundled', { url: bundle.url, sha256: 'c'.repeat(64) })]);
    await assert.rejects(service.pull('bundled', ctx()), refused('ERR_VERIFY_FAILED', new RegExp(`has sha256 ${bundle.sha256}, expected c{64}`)));
    assert.deepEqual(service.list(), []);
    dirEmpty(imagesDir);
  });

  test('a failed or cut-off download leaves nothing', async () => {
    const { service, imagesDir } = setup(noBuild, [
      bundled('fails', { url: `${base}/fail.tar.zst`, sha256: 'd'.repeat(64) }),
      bundled('cut', { url: `${base}/cut.tar.zst`, sha256: 'd'.repeat(64) }),
    ]);
    await assert.rejects(service.pull('fails', ctx()), refused('ERR_DOWNLOAD_FAILED', /HTTP 500/));
    await assert.rejects(service.pull('cut', ctx()), refused('ERR_DOWNLOAD_FAILED', /cut\.tar\.zst/));
    assert.deepEqual(service.list(), []);
    dirEmpty(imagesDir);
  });

  test('export writes a bundle that pull takes back; an existing file needs force', async () => {
    const bundle = await publish('export-src.tar.zst', 'k2');
    const { service } = setup(noBuild, [bundled('bundled', bundle)]);
    await service.pull('bundled', ctx());
    const out = join(mkdtempSync(join(root, 'export-')), 'out.tar.zst');
    const written = await service.export('bundled', out, { force: false }, ctx());
    assert.equal(written.sha256, createHash('sha256').update(readFileSync(out)).digest('hex'));
    await assert.rejects(service.export('bundled', out, { force: false }, ctx()), refused('ERR_ALREADY_EXISTS', /already exists/));
    await assert.rejects(
      service.export('bundled', join(root, 'out.tar'), { force: false }, ctx()),
      refused('ERR_INVALID_ARGUMENT', /does not end in \.tar\.zst/),
    );

    const other = setup(noBuild);
    const { image } = await other.service.pull(out, ctx(), { sha256: written.sha256 });
    assert.equal(image.name, 'bundled');
    assert.equal(image.kernelId, 'kern1', 'the kernel the image booted with where it was exported');
    assert.deepEqual(image.spec.oci, oci);
    assert.ok(readFileSync(image.spec.rootfs).equals(ext4Bytes));
  });
});
