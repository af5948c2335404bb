import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { BundleFileInfo, ImageInfo, KernelInfo } from '../../src/rpc/methods.js';
import { BangerWorld } from './harness.js';

/**
 * Bundles through the real CLI and daemon: an image registered in one world
 * is exported, served over HTTP from loopback and pulled into a fresh world
 * (its own state dir, the kernel pulled there from the catalog); a wrong
 * sha256 leaves nothing. The kernel side the same way.
 */
describe('image and kernel bundles', () => {
  let source: BangerWorld;
  let target: BangerWorld;
  let server: Server;
  let base: string;
  let rootfs: string;
  let exported: BundleFileInfo & { image: string };
  const sha256Of = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

  before(async () => {
    source = new BangerWorld({ sharedDownloads: true });
    target = new BangerWorld({ sharedDownloads: true });
    // Serves the files in the source world's out/ dir by name.
    server = createServer((request, response) => {
      const file = join(source.root, 'out', basename(request.url ?? ''));
      if (!existsSync(file)) {
        response.writeHead(404);
        response.end();
        return;
      }
      response.writeHead(200, { 'content-length': statSync(file).size });
      createReadStream(file).pipe(response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
    source.close();
    target.close();
  });

  test('export writes a bundle of an image, prints its sha256 and keeps an existing file unless --force', async () => {
    await source.pullCatalogKernel();
    const tree = join(source.root, 'tiny-root');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'tiny\n');
    rootfs = join(source.root, 'tiny.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs, '16M'], { stdio: 'pipe' });
    await source.json<ImageInfo>(['image', 'register', 'tiny', '--rootfs', rootfs, '--kernel', 'debian-bookworm-cloud']);

    mkdirSync(join(source.root, 'out'));
    const file = join(source.root, 'out', 'tiny.tar.zst');
    exported = await source.json<BundleFileInfo & { image: string }>(['image', 'export', 'tiny', file]);
    assert.equal(exported.image, 'tiny');
    assert.equal(exported.path, file);
    assert.equal(exported.sha256, sha256Of(file));
    assert.equal(exported.sizeBytes, statSync(file).size);
    assert.equal(statSync(file).mode & 0o777, 0o644, 'readable by others, whatever the daemon umask');

    const again = await source.run(['image', 'export', 'tiny', file]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /error\[ERR_ALREADY_EXISTS\]: .*tiny\.tar\.zst already exists/);
    assert.equal(sha256Of(file), exported.sha256, 'the file is left as it was');

    const forced = await source.run(['image', 'export', 'tiny', file, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, new RegExp(`^${sha256Of(file)}  ${file}$`, 'm'), 'a sha256sum line');
    assert.deepEqual(readdirSync(join(source.root, 'out')), ['tiny.tar.zst'], 'no temp file left');
  });

  test('a pull with the wrong sha256 is refused and leaves nothing: no row, no files, no kernel', async () => {
    const url = `${base}/tiny.tar.zst`;
    const wrong = await target.run(['image', 'pull', url, '--sha256', '0'.repeat(64)]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /error\[ERR_VERIFY_FAILED\]: .*tiny\.tar\.zst has sha256 [0-9a-f]{64}, expected 0{64}/);
    assert.deepEqual((await target.json<{ images: ImageInfo[] }>(['image', 'list'])).images, []);
    assert.deepEqual((await target.json<{ kernels: KernelInfo[] }>(['kernel', 'list'])).kernels, []);
    assert.deepEqual(existsSync(target.layout.imagesDir) ? readdirSync(target.layout.imagesDir) : [], []);

    const noSha = await target.run(['image', 'pull', url]);
    assert.equal(noSha.code, 1);
    assert.match(noSha.stderr, /error\[ERR_INVALID_ARGUMENT\]: pulling a bundle from a URL needs its sha256/);
  });

  test('pulled with the right sha256 into a fresh world, it is the same image, booting with the kernel it names', async () => {
    const result = await target.json<{ image: ImageInfo; pulled: boolean }>(['image', 'pull', `${base}/tiny.tar.zst`, '--sha256', exported.sha256], {
      timeoutMs: 600_000,
    });
    assert.equal(result.pulled, true);
    const { image } = result;
    assert.equal(image.name, 'tiny');
    assert.equal(image.managed, true);
    assert.equal(image.kernel.name, 'debian-bookworm-cloud', 'the kernel the manifest names, pulled here from the catalog');
    assert.ok(image.rootfs.startsWith(target.layout.imagesDir));
    assert.ok(readFileSync(image.rootfs).equals(readFileSync(rootfs)), 'the rootfs, byte for byte');
    assert.equal(image.sizeBytes, statSync(rootfs).size);
    const { images } = await target.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => [i.name, i.id]),
      [['tiny', image.id]],
    );
    assert.deepEqual(readdirSync(target.layout.imagesDir), [image.id], 'no staging dir or download left');
    assert.deepEqual(readdirSync(join(target.layout.imagesDir, image.id)), ['rootfs.ext4']);

    const taken = await target.run(['image', 'pull', `${base}/tiny.tar.zst`, '--sha256', exported.sha256]);
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /error\[ERR_ALREADY_EXISTS\]: an image named "tiny" already exists/);
  });

  test('a bundle file is pulled by path, under another name, its sha256 checked when given', async () => {
    const file = join(source.root, 'out', 'tiny.tar.zst');
    const bad = await target.run(['image', 'pull', file, '--name', 'tiny2', '--sha256', 'f'.repeat(64)]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ERR_VERIFY_FAILED/);
    const { image } = await target.json<{ image: ImageInfo }>(['image', 'pull', file, '--name', 'tiny2']);
    assert.equal(image.name, 'tiny2');
    assert.ok(readFileSync(image.rootfs).equals(readFileSync(rootfs)));
    const { images } = await target.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => i.name),
      ['tiny', 'tiny2'],
    );
  });

  test('a kernel is exported and pulled back the same way', async () => {
    const file = join(source.root, 'out', 'kernel.tar.zst');
    const written = await source.json<BundleFileInfo & { kernel: string }>(['kernel', 'export', 'debian-bookworm-cloud', file]);
    assert.equal(written.sha256, sha256Of(file));

    const wrong = await target.run(['kernel', 'pull', `${base}/kernel.tar.zst`, '--sha256', '1'.repeat(64), '--name', 'copy']);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /ERR_VERIFY_FAILED/);

    const { kernel } = await target.json<{ kernel: KernelInfo }>(['kernel', 'pull', `${base}/kernel.tar.zst`, '--sha256', written.sha256, '--name', 'copy']);
    const original = await source.json<KernelInfo>(['kernel', 'show', 'debian-bookworm-cloud']);
    assert.equal(kernel.name, 'copy');
    assert.equal(kernel.source, 'import');
    assert.equal(kernel.release, original.release);
    assert.deepEqual(kernel.modules, original.modules);
    assert.ok(readFileSync(kernel.files.vmlinux).equals(readFileSync(original.files.vmlinux)), 'vmlinux, byte for byte');
    for (const module of kernel.modules) {
      const name = `${module}.ko`;
      assert.ok(readFileSync(join(kernel.files.dir, 'modules', name)).equals(readFileSync(join(original.files.dir, 'modules', name))), name);
    }
    assert.ok(existsSync(kernel.files.initramfs), 'an initramfs built here');
    const { kernels } = await target.json<{ kernels: KernelInfo[] }>(['kernel', 'list']);
    assert.deepEqual(kernels.map((k) => k.name).sort(), ['copy', 'debian-bookworm-cloud']);
  });
});
