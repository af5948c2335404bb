import assert from 'node:assert/strict';
import { test } from 'node:test';

import { newestPackage, type ArchiveSource } from './archive.js';
import { parseStanzas, releaseFiles } from './control-file.js';
import { compareDebianVersions } from './version.js';

test('Debian version ordering follows dpkg', () => {
  const ascending = ['1.0~rc1', '1.0', '1.0-1', '1.0-2', '1.0a', '1.0+b1', '1.1', '1.10', '2:0.1', '2:0.1-1~bpo1', '2:0.1-1'];
  const sorted = [...ascending].sort(compareDebianVersions);
  // '2:0.1-1~bpo1' sorts before '2:0.1-1' but after '2:0.1' (revision '' < '1~bpo1')
  assert.deepEqual(sorted, ascending);
  assert.ok(compareDebianVersions('6.1.192-2', '6.1.176-1') > 0);
  assert.ok(compareDebianVersions('6.1.76-1', '6.1.176-1') < 0);
  assert.equal(compareDebianVersions('1.02', '1.2'), 0);
});

test('control files parse into stanzas with continuation lines', () => {
  const [release] = parseStanzas(
    'Origin: Debian\nSuite: bookworm\nSHA256:\n 9e0b5aab 8790396 main/binary-amd64/Packages.xz\n 515e692f 50060337 main/binary-amd64/Packages\n',
  );
  assert.ok(release !== undefined);
  assert.equal(release.get('Suite'), 'bookworm');
  assert.deepEqual(releaseFiles(release), [
    { sha256: '9e0b5aab', size: 8790396, path: 'main/binary-amd64/Packages.xz' },
    { sha256: '515e692f', size: 50060337, path: 'main/binary-amd64/Packages' },
  ]);
});

test('the newest version across suites wins', () => {
  const main: ArchiveSource = { base: 'http://m/debian', suite: 'bookworm', component: 'main' };
  const security: ArchiveSource = { base: 'http://m/debian-security', suite: 'bookworm-security', component: 'main' };
  const stanza = (version: string, file: string): string =>
    `Package: linux-image-cloud-amd64\nVersion: ${version}\nDepends: linux-image-6.1.0-x-cloud-amd64 (= ${version})\nFilename: ${file}\nSize: 10\nSHA256: ab\n`;
  const best = newestPackage(
    [
      { source: main, stanzas: parseStanzas(stanza('6.1.176-1', 'pool/main/a.deb')) },
      { source: security, stanzas: parseStanzas(stanza('6.1.192-2', 'pool/updates/b.deb')) },
    ],
    'linux-image-cloud-amd64',
  );
  assert.ok(best !== undefined);
  assert.equal(best.version, '6.1.192-2');
  assert.equal(best.source, security);
  assert.equal(best.filename, 'pool/updates/b.deb');
});
