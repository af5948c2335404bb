import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { fetchPackages, fetchVerifiedRelease, type ArchiveOptions, type ArchiveSource } from './archive.js';
import { parseReleaseDate } from './control-file.js';
import { makeTestKey, packageStanza, publishSuite, releaseText, serveMirror, sha256, xz } from '../../../test/helpers/debian-archive.js';

/**
 * The archive client's trust chain with the real verifier: InRelease files
 * signed by a throwaway key made with gpg for this run, checked by gpgv
 * against a keyring holding only that key, then tampered with byte by byte.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-archive-'));
const key = makeTestKey(root);
const mirror = await serveMirror();
after(() => {
  mirror.close();
  key.dispose();
  rmSync(root, { recursive: true, force: true });
});

let suites = 0;
/** A fresh suite on the mirror (each test its own, so none sees another's files). */
function newSuite(): { source: ArchiveSource; dists: string } {
  const suite = `suite${++suites}`;
  return { source: { base: `${mirror.url}/debian`, suite, component: 'main' }, dists: `/debian/dists/${suite}` };
}

function options(overrides: Partial<ArchiveOptions> = {}): ArchiveOptions {
  return { cacheDir: mkdtempSync(join(root, 'cache-')), keyring: key.keyring, ...overrides };
}

const verifyFailed = (message: RegExp) => (error: unknown) =>
  error instanceof BangerError && error.code === 'ERR_VERIFY_FAILED' && message.test(error.message) && error.hint !== undefined;

const STANZA = packageStanza('hello', '1.0-1', 'pool/main/h/hello/hello_1.0-1_amd64.deb', Buffer.from('deb'));

test('a correctly signed InRelease is accepted', async () => {
  const { source } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA]);
  const release = await fetchVerifiedRelease(source, options());
  assert.equal(release.get('Suite'), source.suite);
});

test('an InRelease whose signed text was altered by one byte is refused', async () => {
  const { source, dists } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA]);
  const signed = mirror.files.get(`${dists}/InRelease`);
  assert.ok(Buffer.isBuffer(signed));
  const tampered = Buffer.from(signed);
  const at = tampered.indexOf(`Suite: ${source.suite}`) + 'Suite: '.length;
  tampered[at] = (tampered[at] ?? 0) ^ 0x01;
  mirror.files.set(`${dists}/InRelease`, tampered);
  await assert.rejects(fetchVerifiedRelease(source, options()), verifyFailed(/signature of .*InRelease does not verify/));
});

test('an InRelease whose signature block was altered is refused', async () => {
  const { source, dists } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA]);
  const signed = mirror.files.get(`${dists}/InRelease`);
  assert.ok(Buffer.isBuffer(signed));
  const tampered = Buffer.from(signed);
  // The signature's base64 starts on the line after the armor header and its blank line.
  const at = tampered.indexOf('-----BEGIN PGP SIGNATURE-----\n\n') + '-----BEGIN PGP SIGNATURE-----\n\n'.length + 40;
  tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41;
  mirror.files.set(`${dists}/InRelease`, tampered);
  await assert.rejects(fetchVerifiedRelease(source, options()), verifyFailed(/does not verify/));
});

test("an InRelease signed by a key outside Debian's archive keyring is refused", async () => {
  const { source } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA]);
  // No keyring option: the default, Debian's own archive keyring, which does not hold the test key.
  const { keyring: _unused, ...withoutKeyring } = options();
  await assert.rejects(fetchVerifiedRelease(source, withoutKeyring), verifyFailed(/does not verify/));
});

test('an unsigned Release served as InRelease is refused', async () => {
  const { source, dists } = newSuite();
  mirror.files.set(`${dists}/InRelease`, Buffer.from(releaseText(source.suite, {})));
  await assert.rejects(fetchVerifiedRelease(source, options()), verifyFailed(/does not verify/));
});

test('an InRelease past its Valid-Until is refused; before it, or without the field, it is accepted', async () => {
  const { source } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA], { 'Valid-Until': 'Sat, 16 Aug 2025 09:31:10 UTC' });
  const at = (iso: string): Partial<ArchiveOptions> => ({ now: () => new Date(iso) });
  await assert.rejects(
    fetchVerifiedRelease(source, options(at('2025-08-16T09:31:11Z'))),
    verifyFailed(/\(dated Sat, 09 Aug 2025 09:31:10 UTC\) expired at Sat, 16 Aug 2025 09:31:10 UTC/),
  );
  const release = await fetchVerifiedRelease(source, options(at('2025-08-16T09:31:09Z')));
  assert.equal(release.get('Suite'), source.suite);

  const { source: main } = newSuite();
  publishSuite(mirror, key, '/debian', main.suite, [STANZA]);
  // The main archive sets no Valid-Until: any date is fine.
  assert.equal((await fetchVerifiedRelease(main, options(at('2999-01-01T00:00:00Z')))).get('Suite'), main.suite);
});

test('an InRelease with an unreadable Valid-Until is refused', async () => {
  const { source } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA], { 'Valid-Until': 'next week' });
  await assert.rejects(fetchVerifiedRelease(source, options()), verifyFailed(/unreadable Valid-Until: "next week"/));
});

test('a Packages index whose hash differs from the one InRelease lists is refused and not cached', async () => {
  const { source, dists } = newSuite();
  publishSuite(mirror, key, '/debian', source.suite, [STANZA]);
  const listed = mirror.files.get(`${dists}/main/binary-amd64/Packages.xz`);
  assert.ok(Buffer.isBuffer(listed));
  const other = xz(packageStanza('hello', '1.0-1', 'pool/main/h/hello/hello_1.0-1_amd64.deb', Buffer.from('evil')));
  mirror.files.set(`${dists}/main/binary-amd64/Packages.xz`, other);
  const opts = options();
  await assert.rejects(
    fetchPackages(source, opts, () => true),
    verifyFailed(new RegExp(`Packages.xz has sha256 ${sha256(other)}, expected ${sha256(listed)}`)),
  );
  assert.deepEqual(readdirSync(opts.cacheDir), []);

  // The genuine index passes and is cached under its hash.
  mirror.files.set(`${dists}/main/binary-amd64/Packages.xz`, listed);
  const stanzas = await fetchPackages(source, opts, (name) => name === 'hello');
  assert.deepEqual(
    stanzas.map((s) => s.get('Version')),
    ['1.0-1'],
  );
  assert.deepEqual(readdirSync(opts.cacheDir), [`sha256-${sha256(listed)}`]);
});

test('Release dates parse as Debian writes them, and nothing else does', () => {
  assert.equal(parseReleaseDate('Sat, 09 Aug 2025 09:31:10 UTC')?.toISOString(), '2025-08-09T09:31:10.000Z');
  assert.equal(parseReleaseDate('9 Aug 2025 09:31:10 GMT')?.toISOString(), '2025-08-09T09:31:10.000Z');
  assert.equal(parseReleaseDate('Sat, 09 Aug 2025 11:31:10 +0200')?.toISOString(), '2025-08-09T09:31:10.000Z');
  assert.equal(parseReleaseDate('Sat, 09 Aug 2025 04:31:10 -0500')?.toISOString(), '2025-08-09T09:31:10.000Z');
  for (const bad of [
    '',
    'next week',
    '2025-08-09T09:31:10Z',
    'Sat, 31 Feb 2025 09:31:10 UTC',
    'Sat, 09 Foo 2025 09:31:10 UTC',
    'Sat, 09 Aug 2025 24:00:00 UTC',
  ]) {
    assert.equal(parseReleaseDate(bad), undefined, bad);
  }
});
