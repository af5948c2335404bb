import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { pino } from 'pino';

import * as names from '../../config/filenames.js';
import { resolveLayout, type Layout } from '../../config/paths.js';
import { BangerError, type ErrorCode } from '../../rpc/errors.js';
import { openStore } from '../../store/database.js';
import { KernelsRepo } from '../../store/kernels-repo.js';
import { BUNDLE_MANIFEST, writeBundle } from '../image/bundle.js';
import type { OpContext } from '../op-context.js';
import type { KernelCatalogEntry } from './catalog.js';
import { kernelBundleManifest, unpackKernelBundle } from './kernel-bundle.js';
import { KernelService } from './kernel-service.js';

/**
 * Kernel bundles: the format's own refusals, and KernelService exporting a
 * kernel and pulling it back (from a file and, as a catalog entry, from a
 * real HTTP server on loopback), with banger's initramfs built from the
 * host's busybox as for any kernel.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-kernel-bundle-'));
const served = new Map<string, Buffer>();
let server: Server;
let base: string;
before(async () => {
  server = createServer((request, response) => {
    const body = served.get(request.url ?? '');
    response.writeHead(body === undefined ? 404 : 200);
    response.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.close();
  rmSync(root, { recursive: true, force: true });
});

const signal = new AbortController().signal;
const ctx = (): OpContext => ({ opId: 'op_test', signal, log: pino({ level: 'silent' }), progress: () => undefined });
let count = 0;
const freshDir = (): string => {
  const dir = join(root, `d${++count}`);
  mkdirSync(dir);
  return dir;
};

const VMLINUX = Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), Buffer.from('not really a kernel, but an ELF by its magic')]);
const MODULES = { virtio_blk: Buffer.from('blk module'), overlay: Buffer.from('overlay module') };

/** A service over a fresh store holding kernel `k` (vmlinux and two modules, as a pull leaves them). */
function setup(catalog: readonly KernelCatalogEntry[] = []): { service: KernelService; layout: Layout; repo: KernelsRepo } {
  const dir = freshDir();
  const layout = resolveLayout({ env: { XDG_STATE_HOME: join(dir, 'state'), XDG_CACHE_HOME: join(dir, 'cache') }, uid: 0, home: dir });
  mkdirSync(layout.stateDir, { recursive: true });
  const repo = new KernelsRepo(openStore(layout.storePath));
  const service = new KernelService({ layout, kernels: repo, mirror: 'http://127.0.0.1:9/unused', env: process.env, catalog });
  return { service, layout, repo };
}

function addKernel(layout: Layout, repo: KernelsRepo): void {
  const dir = join(layout.kernelsDir, 'kern1');
  mkdirSync(join(dir, names.KERNEL_MODULES_DIR), { recursive: true });
  writeFileSync(join(dir, names.KERNEL_VMLINUX), VMLINUX);
  for (const [name, data] of Object.entries(MODULES)) writeFileSync(join(dir, names.KERNEL_MODULES_DIR, `${name}.ko`), data);
  repo.insert({
    id: 'kern1',
    name: 'k',
    state: 'ready',
    source: 'catalog',
    version: '6.1.999-1',
    spec: { modules: Object.keys(MODULES), initHash: 'old', release: '6.1.0-99-cloud-amd64' },
  });
}

const refused = (code: ErrorCode, message: RegExp) => (error: unknown) => {
  assert.ok(error instanceof BangerError, String(error));
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  return true;
};

/** Exports `k` from a world that has it. */
async function exported(): Promise<{ file: string; sha256: string }> {
  const { service, layout, repo } = setup();
  addKernel(layout, repo);
  const file = join(freshDir(), 'k.tar.zst');
  const written = await service.export('k', file, { force: false }, ctx());
  assert.equal(written.sha256, createHash('sha256').update(readFileSync(file)).digest('hex'));
  return { file, sha256: written.sha256 };
}

function assertSameKernel(service: KernelService, name: string): void {
  const kernel = service.find(name);
  const files = service.files(kernel);
  assert.ok(readFileSync(files.vmlinux).equals(VMLINUX));
  assert.deepEqual(kernel.spec.modules, Object.keys(MODULES));
  for (const [module, data] of Object.entries(MODULES)) assert.ok(readFileSync(join(files.dir, names.KERNEL_MODULES_DIR, `${module}.ko`)).equals(data));
  assert.equal(kernel.spec.release, '6.1.0-99-cloud-amd64');
  assert.equal(kernel.version, '6.1.999-1');
  // banger's own initramfs, built here with the modules in it
  const listing = execFileSync('busybox', ['cpio', '-t', '-F', files.initramfs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split('\n');
  for (const entry of ['init', 'bin/busybox', 'lib/modules/virtio_blk.ko', 'lib/modules/overlay.ko']) assert.ok(listing.includes(entry), entry);
}

test('a kernel exported and pulled from the file comes back whole, with an initramfs built here', async () => {
  const { file, sha256 } = await exported();
  const { service } = setup();
  const kernel = await service.pullBundle(file, { sha256 }, ctx());
  assert.equal(kernel.name, 'k');
  assert.equal(kernel.source, 'import');
  assertSameKernel(service, 'k');
  await assert.rejects(service.pullBundle(file, {}, ctx()), refused('ERR_ALREADY_EXISTS', /"k" already exists/));
  const renamed = await service.pullBundle(file, { name: 'k2' }, ctx());
  assert.equal(renamed.name, 'k2');
});

test('a catalog kernel that is a bundle is downloaded, verified and recorded as a catalog kernel', async () => {
  const { file, sha256 } = await exported();
  served.set('/k.tar.zst', readFileSync(file));
  const entry = (name: string, digest: string): KernelCatalogEntry => ({
    name,
    description: name,
    metaPackage: 'unused',
    sources: () => [],
    bundle: { url: `${base}/k.tar.zst`, sha256: digest },
  });
  const { service, layout } = setup([entry('bundled', sha256), entry('wrong', 'f'.repeat(64))]);
  await assert.rejects(service.pull('wrong', ctx()), refused('ERR_VERIFY_FAILED', /expected f{64}/));
  assert.deepEqual(service.list(), []);
  assert.deepEqual(existsSync(layout.kernelsDir) ? readdirSync(layout.kernelsDir) : [], []);
  const [a, b] = await Promise.all([service.pull('bundled', ctx()), service.pull('bundled', ctx())]);
  assert.equal(a.kernel.id, b.kernel.id, 'pulls of one name join');
  assert.equal(a.kernel.source, 'catalog');
  assert.equal(a.kernel.name, 'bundled', "the catalog's name, not the manifest's");
  assertSameKernel(service, 'bundled');
});

test('a sha256 mismatch of a file is refused with nothing kept', async () => {
  const { file } = await exported();
  const { service, layout } = setup();
  await assert.rejects(service.pullBundle(file, { sha256: '0'.repeat(64) }, ctx()), refused('ERR_VERIFY_FAILED', /expected 0{64}/));
  assert.deepEqual(service.list(), []);
  assert.deepEqual(existsSync(layout.kernelsDir) ? readdirSync(layout.kernelsDir) : [], []);
});

/** A kernel bundle with these members after a manifest listing `modules`. */
async function bundleWith(modules: string[], members: { name: string; data: Buffer }[]): Promise<string> {
  const src = freshDir();
  const paths = members.map((m, i) => {
    const path = join(src, `m${i}`);
    writeFileSync(path, m.data);
    return { name: m.name, path };
  });
  const manifest = kernelBundleManifest({
    id: 'x',
    name: 'k',
    state: 'ready',
    source: 'import',
    version: null,
    spec: { modules, initHash: 'x' },
    createdAt: '',
    updatedAt: '',
  });
  const file = join(src, 'k.tar.zst');
  await writeBundle(file, manifest, paths, { force: false, signal });
  return file;
}

test('kernel bundles hold vmlinux and exactly the listed modules; anything else leaves nothing', async () => {
  const cases: { file: string; code: ErrorCode; message: RegExp }[] = [
    {
      file: await bundleWith(
        ['a'],
        [
          { name: 'vmlinux', data: VMLINUX },
          { name: 'modules/a.ko', data: Buffer.from('a') },
          { name: 'modules/b.ko', data: Buffer.from('b') },
        ],
      ),
      code: 'ERR_IMAGE_INVALID',
      message: /unexpected member "modules\/b\.ko"/,
    },
    { file: await bundleWith(['a'], [{ name: 'vmlinux', data: VMLINUX }]), code: 'ERR_IMAGE_INVALID', message: /has no modules\/a\.ko/ },
    { file: await bundleWith(['../a'], [{ name: 'vmlinux', data: VMLINUX }]), code: 'ERR_IMAGE_INVALID', message: /not a module name/ },
    { file: await bundleWith([], [{ name: 'vmlinux', data: Buffer.from('#!/bin/sh\n') }]), code: 'ERR_IMAGE_INVALID', message: /not an ELF/ },
    { file: await bundleWith([], [{ name: 'rootfs.ext4', data: Buffer.from('x') }]), code: 'ERR_IMAGE_INVALID', message: /unexpected member "rootfs\.ext4"/ },
  ];
  for (const { file, code, message } of cases) {
    const dir = freshDir();
    await assert.rejects(unpackKernelBundle(file, dir, { signal }), refused(code, message));
    assert.deepEqual(readdirSync(dir), [], String(message));
  }
  const dir = freshDir();
  const manifest = await unpackKernelBundle(
    await bundleWith(
      ['a'],
      [
        { name: 'vmlinux', data: VMLINUX },
        { name: 'modules/a.ko', data: Buffer.from('a') },
      ],
    ),
    dir,
    { signal },
  );
  assert.deepEqual(manifest.modules, ['a']);
  assert.deepEqual(readdirSync(dir).sort(), ['modules', 'vmlinux']);
  assert.equal(readFileSync(join(dir, 'modules', 'a.ko'), 'utf8'), 'a');
  assert.ok(!readdirSync(dir).includes(BUNDLE_MANIFEST), 'the manifest is read, not written');
});
