import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { MISE_RELEASE } from './catalog.js';
import { cachedNpmTarball, extractMise, fetchMise, integritySha512, MISE_MEMBER } from './mise.js';

/**
 * mise from npm: integrity strings, the sha512-verified cache (against the
 * real registry), and taking the executable out of a package, refusing odd
 * ones (packages built here with GNU tar).
 */

const root = mkdtempSync(join(tmpdir(), 'banger-mise-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A small real npm tarball, for failures that need a download but not mise's 50 MB. */
const SMALL_TARBALL = 'https://registry.npmjs.org/is-number/-/is-number-7.0.0.tgz';

/** An HTTPS URL nothing answers: a call that succeeds with it cannot have downloaded anything. */
const UNREACHABLE = 'https://127.0.0.1:9/never.tgz';

const isCode =
  (code: string, message?: RegExp) =>
  (error: unknown): boolean =>
    error instanceof BangerError && error.code === code && (message === undefined || message.test(error.message));

const integrityOf = (bytes: Buffer): string => `sha512-${createHash('sha512').update(bytes).digest('base64')}`;

test('an npm integrity string gives its sha512; anything but one sha512-<base64> is refused', () => {
  const bytes = Buffer.from('banger');
  assert.equal(integritySha512(integrityOf(bytes)), createHash('sha512').update(bytes).digest('hex'));
  assert.match(integritySha512(MISE_RELEASE.integrity), /^[0-9a-f]{128}$/);
  const sha256 = `sha256-${createHash('sha256').update(bytes).digest('base64')}`;
  for (const bad of [
    '',
    sha256,
    'sha512-',
    MISE_RELEASE.integrity.slice(0, -4),
    `${MISE_RELEASE.integrity} ${integrityOf(bytes)}`,
    `${MISE_RELEASE.integrity}?opt`,
    ` ${MISE_RELEASE.integrity}`,
    MISE_RELEASE.integrity.replace('sha512-', 'SHA512-'),
  ]) {
    assert.throws(() => integritySha512(bad), isCode('ERR_INVALID_ARGUMENT', /not an npm sha512 integrity/), JSON.stringify(bad));
  }
});

test('a tarball whose sha512 is not the pinned one is refused with ERR_VERIFY_FAILED, and nothing is cached', async () => {
  const cache = join(root, 'cache-mismatch');
  await assert.rejects(cachedNpmTarball(cache, SMALL_TARBALL, MISE_RELEASE.integrity), (error: unknown) =>
    isCode('ERR_VERIFY_FAILED', /is-number-7\.0\.0\.tgz has integrity sha512-\S+, expected sha512-ButPFG/)(error),
  );
  assert.deepEqual(readdirSync(cache), []);
});

test('a malformed integrity or a URL that is not HTTPS is refused before anything is fetched or created', async () => {
  const cache = join(root, 'cache-refused');
  await assert.rejects(cachedNpmTarball(cache, SMALL_TARBALL, 'sha1-abc'), isCode('ERR_INVALID_ARGUMENT'));
  await assert.rejects(
    cachedNpmTarball(cache, SMALL_TARBALL.replace('https:', 'http:'), MISE_RELEASE.integrity),
    isCode('ERR_INVALID_ARGUMENT', /not an HTTPS URL/),
  );
  assert.throws(() => statSync(cache), { code: 'ENOENT' });
});

test('the pinned mise downloads, verifies and yields an executable ELF that prints its version; the next call uses the cache', async () => {
  const cache = join(root, 'cache-real');
  const first = mkdtempSync(join(root, 'work-'));
  const progress: { received: number; total: number | undefined }[] = [];
  const mise = await fetchMise(MISE_RELEASE, cache, first, { onProgress: ({ received, total }) => progress.push({ received, total }) });
  assert.equal(mise, join(first, 'mise'));
  assert.deepEqual(readdirSync(first), ['mise'], 'only the executable is left in the work dir');
  assert.equal(statSync(mise).mode & 0o7777, 0o755);
  assert.deepEqual(readFileSync(mise).subarray(0, 4), Buffer.from('\x7fELF', 'latin1'));
  const home = mkdtempSync(join(root, 'home-'));
  const version = execFileSync(mise, ['--version'], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: home } });
  assert.match(version, new RegExp(`^${MISE_RELEASE.version.replaceAll('.', '\\.')} linux-x64 `));
  const last = progress.at(-1);
  assert.ok(last?.total !== undefined && last.received === last.total, 'progress ends at the full size');

  const cached = readdirSync(cache);
  assert.deepEqual(cached, [`sha512-${integritySha512(MISE_RELEASE.integrity)}`], 'the cache holds the verified tarball, and no partial file');

  // From the cache: the URL answers nothing, so a download would fail.
  const second = mkdtempSync(join(root, 'work-'));
  const again = await fetchMise({ ...MISE_RELEASE, tarball: UNREACHABLE }, cache, second);
  assert.ok(readFileSync(again).equals(readFileSync(mise)));

  // A cached tarball that no longer hashes right is dropped, not used.
  writeFileSync(join(cache, cached[0] ?? ''), 'corrupt');
  await assert.rejects(
    fetchMise({ ...MISE_RELEASE, tarball: UNREACHABLE }, cache, mkdtempSync(join(root, 'work-'))),
    isCode('ERR_DOWNLOAD_FAILED', /127\.0\.0\.1:9/),
  );
  assert.deepEqual(readdirSync(cache), []);
});

/** Packs `files` (path -> content, or `{ symlink }`) under package/ into a .tgz with GNU tar; `extra` are more tar arguments. */
function makePackage(files: Record<string, string | Buffer | { symlink: string }>, extra: string[] = []): string {
  const dir = mkdtempSync(join(root, 'pkg-'));
  for (const [path, content] of Object.entries(files)) {
    const full = join(dir, path);
    mkdirSync(join(full, '..'), { recursive: true });
    if (typeof content === 'object' && !Buffer.isBuffer(content)) symlinkSync(content.symlink, full);
    else writeFileSync(full, content);
  }
  const tgz = join(dir, 'package.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', dir, ...extra, 'package']);
  return tgz;
}

const FAKE_ELF = Buffer.concat([Buffer.from('\x7fELF', 'latin1'), Buffer.alloc(1000, 7)]);

test('extracting takes exactly the executable out, mode 0755 whatever the umask', async () => {
  const tgz = makePackage({ [MISE_MEMBER]: FAKE_ELF, 'package/README.md': 'readme', 'package/bin/mise.d': 'completions' });
  const work = mkdtempSync(join(root, 'work-'));
  const previous = process.umask(0o077);
  try {
    const out = await extractMise(tgz, work);
    assert.ok(readFileSync(out).equals(FAKE_ELF));
    assert.equal(statSync(out).mode & 0o7777, 0o755);
  } finally {
    process.umask(previous);
  }
  assert.deepEqual(readdirSync(work), ['mise']);
});

test('odd packages are refused with ERR_IMAGE_INVALID and leave nothing in the work dir', async () => {
  const dupDir = mkdtempSync(join(root, 'dup-'));
  mkdirSync(join(dupDir, 'package', 'bin'), { recursive: true });
  writeFileSync(join(dupDir, MISE_MEMBER), FAKE_ELF);
  const duplicate = join(dupDir, 'dup.tgz');
  execFileSync('tar', ['-czf', duplicate, '-C', dupDir, MISE_MEMBER, MISE_MEMBER]);
  const notGzip = join(root, 'not-gzip.tgz');
  writeFileSync(notGzip, 'plain text');
  const bomb = join(root, 'bomb.tgz');
  execFileSync('sh', [
    '-c',
    `mkdir -p "$1/package/bin" && head -c 20000000 /dev/zero > "$1/package/README.md" && cp "$2" "$1/${MISE_MEMBER}" && tar -czf "$3" -C "$1" package`,
    'sh',
    join(root, 'bomb'),
    notGzip,
    bomb,
  ]);

  const cases: [string, string, RegExp, number?][] = [
    ['no executable', makePackage({ 'package/README.md': 'readme' }), /holds no package\/bin\/mise/],
    ['a symlink', makePackage({ [MISE_MEMBER]: { symlink: '/bin/sh' } }), /as a symlink, not a regular file/],
    ['a directory', makePackage({ [`${MISE_MEMBER}/x`]: FAKE_ELF }), /as a directory, not a regular file/],
    ['not ELF', makePackage({ [MISE_MEMBER]: '#!/bin/sh\necho hi\n' }), /not an ELF executable/],
    ['empty', makePackage({ [MISE_MEMBER]: '' }), /of 0 bytes/],
    ['too big', makePackage({ [MISE_MEMBER]: FAKE_ELF }), /of 1004 bytes \(at most 1000 accepted\)/, 1000],
    ['twice', duplicate, /holds package\/bin\/mise 2 times/],
    ['not gzip', notGzip, /cannot be unpacked/],
    ['unpacking to too much', bomb, /unpacks to more than 16778216 bytes/, 1000],
  ];
  for (const [what, tgz, message, maxBytes] of cases) {
    const work = mkdtempSync(join(root, 'work-'));
    await assert.rejects(extractMise(tgz, work, maxBytes === undefined ? {} : { maxBytes }), isCode('ERR_IMAGE_INVALID', message), what);
    assert.deepEqual(readdirSync(work), [], what);
  }
});
