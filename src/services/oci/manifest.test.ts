import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { MEDIA_TYPES, parseManifest, selectPlatform } from './manifest.js';

const D = (n: string) => `sha256:${n.repeat(64)}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const failsWith = (code: string, message: RegExp) => (error: unknown) => error instanceof BangerError && error.code === code && message.test(error.message);

test('an OCI manifest without a mediaType field is read by its shape and takes the Content-Type', () => {
  const manifest = parseManifest(
    json({ schemaVersion: 2, config: { digest: D('a'), size: 2 }, layers: [{ mediaType: 'l', digest: D('b'), size: 3 }] }),
    `${MEDIA_TYPES.ociManifest}; charset=utf-8`,
    'x',
  );
  assert.deepEqual(manifest, {
    kind: 'image',
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: '', digest: D('a'), size: 2 },
    layers: [{ mediaType: 'l', digest: D('b'), size: 3 }],
  });
});

test('schema 1, non-sha256 digests, bad sizes and unknown types are refused', () => {
  assert.throws(() => parseManifest(json({ schemaVersion: 1, fsLayers: [] }), null, 'x'), failsWith('ERR_DOWNLOAD_FAILED', /schema 1/));
  assert.throws(() => parseManifest(json({ manifests: [{ digest: 'sha512:ab', size: 1 }] }), null, 'x'), failsWith('ERR_DOWNLOAD_FAILED', /sha512/));
  assert.throws(
    () => parseManifest(json({ layers: [{ digest: D('c'), size: -1 }], config: { digest: D('c'), size: 1 } }), null, 'x'),
    failsWith('ERR_DOWNLOAD_FAILED', /size/),
  );
  assert.throws(() => parseManifest(json({ mediaType: 'text/plain' }), null, 'x'), failsWith('ERR_DOWNLOAD_FAILED', /text\/plain/));
  assert.throws(() => parseManifest(Buffer.from('{'), null, 'x'), failsWith('ERR_DOWNLOAD_FAILED', /not JSON/));
});

test('platform selection matches os and architecture, and a wanted variant', () => {
  const index = parseManifest(
    json({
      mediaType: MEDIA_TYPES.dockerList,
      manifests: [
        { digest: D('1'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
        { digest: D('2'), size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { digest: D('3'), size: 1, platform: { os: 'windows', architecture: 'amd64' } },
        { digest: D('4'), size: 1 },
      ],
    }),
    null,
    'x',
  );
  assert.ok(index.kind === 'index');
  assert.equal(selectPlatform(index, 'x', { os: 'linux', architecture: 'arm', variant: 'v7' }).digest, D('2'));
  assert.equal(selectPlatform(index, 'x', { os: 'linux', architecture: 'arm' }).digest, D('1'));
  assert.throws(() => selectPlatform(index, 'x'), failsWith('ERR_NOT_FOUND', /no linux\/amd64 .*linux\/arm\/v6, linux\/arm\/v7, windows\/amd64, unknown/));
});
