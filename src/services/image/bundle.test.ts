import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BangerError, type ErrorCode } from '../../rpc/errors.js';
import { entryHeader } from '../../workspace/tar-writer.js';
import {
  BUNDLE_MANIFEST,
  downloadBundle,
  imageBundleManifest,
  MAX_MANIFEST_BYTES,
  unpackImageBundle,
  writeBundle,
  type ImageBundleManifest,
} from './bundle.js';

/**
 * Bundles against the real zstd and real files: a round trip, bundles made
 * by GNU tar by hand, every refusal of a hostile or broken bundle (each must
 * leave the target directory empty), the atomic no-clobber write, and
 * downloads from a real HTTP server on loopback.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-bundle-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const signal = new AbortController().signal;
let dirs = 0;
const freshDir = (): string => {
  const dir = join(root, `d${++dirs}`);
  mkdirSync(dir);
  return dir;
};

/** A small real ext4 (mostly zeros, as every fresh ext4 is). */
function makeExt4(): string {
  const tree = freshDir();
  mkdirSync(join(tree, 'etc'));
  writeFileSync(join(tree, 'etc', 'hostname'), 'tiny\n');
  const file = join(freshDir(), 'rootfs.ext4');
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, file, '8M'], { stdio: 'pipe' });
  return file;
}

const ext4 = makeExt4();
const ext4Bytes = readFileSync(ext4);

function manifestFor(overrides: Partial<Record<keyof ImageBundleManifest, unknown>> = {}): Record<string, unknown> {
  return { ...imageBundleManifest('tiny', 'k', ext4Bytes.length, { rootfs: ext4, managed: true, sizeBytes: ext4Bytes.length }), ...overrides };
}

/** A tar member with any type flag (the header's checksum recomputed). */
function member(name: string, data: Buffer, typeflag = '0', linkname = ''): Buffer {
  const header = Buffer.from(entryHeader({ name, mode: 0o644, mtime: 0, kind: { type: 'file', size: typeflag === '0' ? data.length : 0 } }));
  const main = header.subarray(header.length - 512);
  main.write(typeflag, 156, 1, 'latin1');
  main.fill(0, 157, 257);
  main.write(linkname, 157, 'utf8');
  main.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of main) sum += byte;
  main.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  const body = typeflag === '0' ? data : Buffer.alloc(0);
  return Buffer.concat([header, body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}

const manifestMember = (manifest: unknown = manifestFor()): Buffer => member(BUNDLE_MANIFEST, Buffer.from(JSON.stringify(manifest)));
const rootfsMember = (): Buffer => member('rootfs.ext4', ext4Bytes);

/** A .tar.zst of these members (and the end-of-archive blocks). */
function bundleOf(...members: Buffer[]): string {
  const dir = freshDir();
  writeFileSync(join(dir, 'b.tar'), Buffer.concat([...members, Buffer.alloc(1024)]));
  execFileSync('zstd', ['-q', join(dir, 'b.tar'), '-o', join(dir, 'b.tar.zst')]);
  rmSync(join(dir, 'b.tar'));
  return join(dir, 'b.tar.zst');
}

const refused = (code: ErrorCode, message: RegExp) => (error: unknown) => {
  assert.ok(error instanceof BangerError, String(error));
  assert.equal(error.code, code, error.message);
  assert.match(error.message, message);
  return true;
};

/** Unpacks `bundle` into a fresh dir, expecting a refusal; the dir must be left empty. */
async function assertRefused(bundle: string, code: ErrorCode, message: RegExp): Promise<void> {
  const dir = freshDir();
  await assert.rejects(unpackImageBundle(bundle, dir, { signal }), refused(code, message));
  assert.deepEqual(readdirSync(dir), [], 'nothing is left of a refused bundle');
}

describe('writing and reading back', () => {
  test('a bundle round-trips: manifest as written, rootfs byte for byte, holes for its zeros', async () => {
    const out = join(freshDir(), 'tiny.tar.zst');
    const manifest = manifestFor({
      sshServer: 'banger',
      oci: { ref: 'docker.io/library/x:1', digest: `sha256:${'a'.repeat(64)}`, run: { env: ['A=1'], workingDir: '/w', user: 'app' } },
    });
    const written = await writeBundle(out, manifest, [{ name: 'rootfs.ext4', path: ext4 }], { force: false, signal });
    const file = readFileSync(out);
    assert.equal(written.sha256, createHash('sha256').update(file).digest('hex'));
    assert.equal(written.sizeBytes, file.length);
    assert.ok(file.length < ext4Bytes.length / 4, 'compressed');
    assert.equal(statSync(out).mode & 0o777, 0o644);
    assert.deepEqual(
      readdirSync(join(out, '..')).filter((name) => name !== 'tiny.tar.zst'),
      [],
      'no temp file left',
    );

    const dir = freshDir();
    let seen: ImageBundleManifest | undefined;
    const unpacked = await unpackImageBundle(out, dir, {
      signal,
      onManifest: (m) => {
        seen = m;
        assert.equal(existsSync(join(dir, 'rootfs.ext4')), false, 'the manifest is handed over before the rootfs is written');
      },
    });
    assert.deepEqual(unpacked.manifest, manifest);
    assert.deepEqual(seen, manifest);
    assert.deepEqual(readdirSync(dir), ['rootfs.ext4']);
    assert.ok(readFileSync(unpacked.rootfs).equals(ext4Bytes));
    assert.ok(statSync(unpacked.rootfs).blocks * 512 < ext4Bytes.length / 2, 'runs of zeros became holes');
  });

  for (const format of ['gnu', 'pax', 'ustar']) {
    test(`a bundle made by hand with GNU tar (--format=${format}) and zstd is accepted`, async () => {
      const src = freshDir();
      writeFileSync(join(src, BUNDLE_MANIFEST), JSON.stringify(manifestFor()));
      writeFileSync(join(src, 'rootfs.ext4'), ext4Bytes);
      const tar = join(freshDir(), 'hand.tar');
      execFileSync('tar', ['-C', src, `--format=${format}`, '-cf', tar, BUNDLE_MANIFEST, 'rootfs.ext4']);
      const file = `${tar}.zst`;
      execFileSync('zstd', ['-q', tar, '-o', file]);
      const dir = freshDir();
      const { rootfs } = await unpackImageBundle(file, dir, { signal });
      assert.ok(readFileSync(rootfs).equals(ext4Bytes));
    });
  }

  test('an existing file is kept unless --force; with it, replaced whole', async () => {
    const dir = freshDir();
    const out = join(dir, 'x.tar.zst');
    writeFileSync(out, 'precious');
    await assert.rejects(
      writeBundle(out, manifestFor(), [{ name: 'rootfs.ext4', path: ext4 }], { force: false, signal }),
      refused('ERR_ALREADY_EXISTS', /already exists/),
    );
    assert.equal(readFileSync(out, 'utf8'), 'precious');
    await writeBundle(out, manifestFor(), [{ name: 'rootfs.ext4', path: ext4 }], { force: true, signal });
    const { rootfs } = await unpackImageBundle(out, freshDir(), { signal });
    assert.ok(readFileSync(rootfs).equals(ext4Bytes));
    assert.deepEqual(readdirSync(dir), ['x.tar.zst']);
  });

  test('a missing directory, a directory in the way, a missing member and a cancel leave no file', async () => {
    const dir = freshDir();
    await assert.rejects(writeBundle(join(dir, 'nope', 'x.tar.zst'), manifestFor(), [], { force: false, signal }), refused('ERR_NOT_FOUND', /does not exist/));
    mkdirSync(join(dir, 'taken.tar.zst'));
    await assert.rejects(
      writeBundle(join(dir, 'taken.tar.zst'), manifestFor(), [], { force: true, signal }),
      refused('ERR_INVALID_ARGUMENT', /is not a regular file/),
    );
    await assert.rejects(
      writeBundle(join(dir, 'y.tar.zst'), manifestFor(), [{ name: 'rootfs.ext4', path: join(dir, 'gone.ext4') }], { force: false, signal }),
      refused('ERR_NOT_FOUND', /is gone/),
    );
    const controller = new AbortController();
    const cancelled = writeBundle(join(dir, 'z.tar.zst'), manifestFor(), [{ name: 'rootfs.ext4', path: ext4 }], {
      force: false,
      signal: controller.signal,
      onProgress: () => {
        controller.abort(new BangerError('ERR_CANCELLED', 'interrupted'));
      },
    });
    await assert.rejects(cancelled, refused('ERR_CANCELLED', /interrupted/));
    assert.deepEqual(readdirSync(dir), ['taken.tar.zst']);
  });
});

describe('hostile and broken bundles are refused, leaving nothing', () => {
  test('a ".." name', () => assertRefused(bundleOf(manifestMember(), member('../rootfs.ext4', ext4Bytes)), 'ERR_IMAGE_UNSAFE', /"\.\." component/));
  test('an absolute name', () => assertRefused(bundleOf(manifestMember(), member('/rootfs.ext4', ext4Bytes)), 'ERR_IMAGE_UNSAFE', /absolute name/));
  test('a symlink member', () =>
    assertRefused(bundleOf(manifestMember(), member('rootfs.ext4', Buffer.alloc(0), '2', '/etc/shadow')), 'ERR_IMAGE_UNSAFE', /symbolic link/));
  test('a hard link member', () =>
    assertRefused(bundleOf(manifestMember(), member('rootfs.ext4', Buffer.alloc(0), '1', 'manifest.json')), 'ERR_IMAGE_UNSAFE', /hard link/));
  test('a symlinked manifest', () =>
    assertRefused(bundleOf(member(BUNDLE_MANIFEST, Buffer.alloc(0), '2', '/etc/passwd'), rootfsMember()), 'ERR_IMAGE_UNSAFE', /symbolic link/));
  test('a directory member', () =>
    assertRefused(bundleOf(manifestMember(), member('rootfs.ext4/', Buffer.alloc(0), '5'), rootfsMember()), 'ERR_IMAGE_INVALID', /is a directory/));
  test('a device member', () =>
    assertRefused(bundleOf(manifestMember(), member('rootfs.ext4', Buffer.alloc(0), '3')), 'ERR_IMAGE_INVALID', /character device/));
  test('a "./" name', () => assertRefused(bundleOf(manifestMember(), member('./rootfs.ext4', ext4Bytes)), 'ERR_IMAGE_INVALID', /not a plain name/));
  test('an extra member after the rootfs (the rootfs written so far is removed)', () =>
    assertRefused(bundleOf(manifestMember(), rootfsMember(), member('notes.txt', Buffer.from('hi'))), 'ERR_IMAGE_INVALID', /unexpected member "notes\.txt"/));
  test('an extra member with a long (pax) name', () =>
    assertRefused(bundleOf(manifestMember(), member(`${'a/'.repeat(70)}rootfs.ext4`, ext4Bytes)), 'ERR_IMAGE_INVALID', /unexpected member/));
  test('the rootfs twice', () => assertRefused(bundleOf(manifestMember(), rootfsMember(), rootfsMember()), 'ERR_IMAGE_INVALID', /twice/));
  test('no rootfs', () => assertRefused(bundleOf(manifestMember()), 'ERR_IMAGE_INVALID', /has no rootfs\.ext4/));
  test('an empty archive', () => assertRefused(bundleOf(), 'ERR_IMAGE_INVALID', /empty/));
  test('the manifest not first', () => assertRefused(bundleOf(rootfsMember(), manifestMember()), 'ERR_IMAGE_INVALID', /starts with "rootfs\.ext4"/));
  test('an oversized manifest', () =>
    assertRefused(bundleOf(member(BUNDLE_MANIFEST, Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20)), rootfsMember()), 'ERR_IMAGE_INVALID', /at most/));
  test('a manifest that is not JSON', () =>
    assertRefused(bundleOf(member(BUNDLE_MANIFEST, Buffer.from('{nope')), rootfsMember()), 'ERR_IMAGE_INVALID', /not JSON/));
  test('a kernel bundle given as an image', () =>
    assertRefused(bundleOf(manifestMember({ format: 'banger-kernel', version: 1, name: 'k', modules: [] })), 'ERR_INVALID_ARGUMENT', /not an image bundle/));
  test('a newer format version', () => assertRefused(bundleOf(manifestMember(manifestFor({ version: 2 })), rootfsMember()), 'ERR_IMAGE_INVALID', /version 2/));
  test('a manifest field of the wrong shape', () =>
    assertRefused(bundleOf(manifestMember(manifestFor({ kernel_ref: '../k' })), rootfsMember()), 'ERR_IMAGE_INVALID', /kernel_ref/));
  test('a rootfs whose size is not the manifest’s', () =>
    assertRefused(bundleOf(manifestMember(manifestFor({ sizeBytes: 4096 })), rootfsMember()), 'ERR_IMAGE_INVALID', /manifest says 4096/));
  test('a rootfs cut short inside the tar', () =>
    assertRefused(bundleOf(manifestMember(), member('rootfs.ext4', ext4Bytes).subarray(0, 600_000)), 'ERR_IMAGE_INVALID', /ends inside/));
  test('a truncated zstd file', async () => {
    const file = bundleOf(manifestMember(), rootfsMember());
    truncateSync(file, Math.floor(statSync(file).size / 2));
    await assertRefused(file, 'ERR_IMAGE_INVALID', /does not decompress/);
  });
  test('a file that is not zstd at all', async () => {
    const file = join(freshDir(), 'plain.tar.zst');
    writeFileSync(file, Buffer.concat([manifestMember(), rootfsMember()]));
    await assertRefused(file, 'ERR_IMAGE_INVALID', /does not decompress/);
  });
  test('a cancel while unpacking', async () => {
    const dir = freshDir();
    const controller = new AbortController();
    const unpacking = unpackImageBundle(bundleOf(manifestMember(), rootfsMember()), dir, {
      signal: controller.signal,
      onManifest: () => {
        controller.abort(new BangerError('ERR_CANCELLED', 'interrupted'));
      },
    });
    await assert.rejects(unpacking, refused('ERR_CANCELLED', /interrupted/));
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe('downloads', () => {
  const body = Buffer.from('the bundle bytes '.repeat(10_000));
  const sha = createHash('sha256').update(body).digest('hex');
  let server: Server;
  let base: string;
  before(async () => {
    server = createServer((request, response) => {
      if (request.url === '/ok.tar.zst') {
        response.writeHead(200, { 'content-length': body.length });
        response.end(body);
      } else if (request.url === '/cut.tar.zst') {
        response.writeHead(200, { 'content-length': body.length });
        response.write(body.subarray(0, 1000), () => {
          response.destroy();
        });
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.close();
  });

  test('a download that hashes right lands whole', async () => {
    const dir = freshDir();
    await downloadBundle(`${base}/ok.tar.zst`, join(dir, 'b.tar.zst'), sha, { signal });
    assert.ok(readFileSync(join(dir, 'b.tar.zst')).equals(body));
  });

  test('a sha256 mismatch, an HTTP error and a cut-off transfer leave nothing', async () => {
    const dir = freshDir();
    await assert.rejects(
      downloadBundle(`${base}/ok.tar.zst`, join(dir, 'b'), 'f'.repeat(64), { signal }),
      refused('ERR_VERIFY_FAILED', new RegExp(`has sha256 ${sha}`)),
    );
    await assert.rejects(downloadBundle(`${base}/missing.tar.zst`, join(dir, 'b'), sha, { signal }), refused('ERR_DOWNLOAD_FAILED', /HTTP 404/));
    await assert.rejects(downloadBundle(`${base}/cut.tar.zst`, join(dir, 'b'), sha, { signal }), refused('ERR_DOWNLOAD_FAILED', /cut\.tar\.zst/));
    assert.deepEqual(readdirSync(dir), []);
  });
});
