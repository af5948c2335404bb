import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { allowsPlainHttp, formatReference, manifestReference, parseReference, registryBaseUrl } from './reference.js';

const DIGEST = `sha256:${'ab'.repeat(32)}`;

test('a Docker Hub short name gets docker.io, library/ and the registry-1 endpoint', () => {
  const ref = parseReference('debian:bookworm');
  assert.deepEqual(ref, { registry: 'docker.io', endpoint: 'registry-1.docker.io', repository: 'library/debian', tag: 'bookworm', digest: undefined });
  assert.equal(formatReference(ref), 'docker.io/library/debian:bookworm');
  assert.equal(registryBaseUrl(ref), 'https://registry-1.docker.io/v2');
});

test('no tag and no digest means latest; a Hub user repository keeps its path', () => {
  assert.equal(parseReference('debian').tag, 'latest');
  const ref = parseReference('someuser/tool');
  assert.equal(ref.repository, 'someuser/tool');
  assert.equal(ref.registry, 'docker.io');
  assert.equal(parseReference('index.docker.io/library/alpine').registry, 'docker.io');
});

test('a registry with a port is a registry, and its tag is split off after the last slash', () => {
  const ref = parseReference('localhost:5000/team/dev:1');
  assert.deepEqual(ref, { registry: 'localhost:5000', endpoint: 'localhost:5000', repository: 'team/dev', tag: '1', digest: undefined });
  assert.equal(registryBaseUrl(ref), 'http://localhost:5000/v2');
  assert.equal(parseReference('localhost/dev').registry, 'localhost');
});

test('a digest pins the manifest and leaves the tag undefined', () => {
  const ref = parseReference(`registry.example.com/org/img@${DIGEST}`);
  assert.equal(ref.registry, 'registry.example.com');
  assert.equal(ref.repository, 'org/img');
  assert.equal(ref.tag, undefined);
  assert.equal(ref.digest, DIGEST);
  assert.equal(manifestReference(ref), DIGEST);
  assert.equal(manifestReference(parseReference(`img:1@${DIGEST}`)), DIGEST);
});

for (const bad of ['', ' debian', 'Debian', 'debian:', 'debian:-x', 'img@sha256:abc', `img@md5:${'a'.repeat(32)}`, 'a//b', 'reg.io/', 'bad_host.io:x/y']) {
  test(`${JSON.stringify(bad)} is rejected with ERR_INVALID_ARGUMENT and a hint`, () => {
    assert.throws(
      () => parseReference(bad),
      (error: unknown) => error instanceof BangerError && error.code === 'ERR_INVALID_ARGUMENT' && (error.hint ?? '').includes('debian:bookworm'),
    );
  });
}

test('plain HTTP is allowed for loopback and listed insecure registries only', () => {
  assert.equal(allowsPlainHttp('localhost:5000'), true);
  assert.equal(allowsPlainHttp('127.0.0.1:5000'), true);
  assert.equal(allowsPlainHttp('127.8.9.10'), true);
  assert.equal(allowsPlainHttp('[::1]:5000'), true);
  assert.equal(allowsPlainHttp('128.0.0.1:5000'), false);
  assert.equal(allowsPlainHttp('localhost.example.com'), false);
  assert.equal(allowsPlainHttp('registry.lan:5000'), false);
  assert.equal(allowsPlainHttp('registry.lan:5000', ['registry.lan:5000']), true);
  assert.equal(allowsPlainHttp('registry.lan:5000', ['registry.lan']), true);
  assert.equal(allowsPlainHttp('registry.lan:5000', ['other.lan']), false);
  assert.equal(registryBaseUrl(parseReference('[::1]:5000/x')), 'http://[::1]:5000/v2');
});
