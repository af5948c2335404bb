import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { parseReference } from '../../src/services/oci/reference.js';
import { RegistryClient } from '../../src/services/oci/registry-client.js';
import { buildOciLayout, layoutBlob, OCI_MANIFEST, TestRegistry } from '../helpers/oci-registry.js';

/**
 * The loopback registry the OCI pull tests use: Debian's docker-registry,
 * fed by skopeo from an OCI layout built by the test. Checks the fixture
 * itself, so a pull test that fails later fails for the client's reasons.
 */
describe('loopback OCI registry fixture', { timeout: 120_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'banger-oci-it-'));
  let registry: TestRegistry;
  before(async () => {
    registry = await TestRegistry.start();
  });
  after(() => {
    registry.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('a two-layer image pushed with skopeo is served back byte for byte', async () => {
    const base = join(root, 'base');
    const top = join(root, 'top');
    mkdirSync(join(base, 'etc'), { recursive: true });
    writeFileSync(join(base, 'etc', 'os-release'), 'ID=test\n');
    mkdirSync(join(top, 'etc'), { recursive: true });
    writeFileSync(join(top, 'etc', '.wh.os-release'), '');
    const layout = join(root, 'layout');
    const manifest = buildOciLayout(layout, 'v1', [base, top]);
    registry.push(layout, 'v1', 'team/fixture');

    const response = await fetch(`http://${registry.host}/v2/team/fixture/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('docker-content-digest'), manifest.digest);
    const served = Buffer.from(await response.arrayBuffer());
    assert.deepEqual(served, layoutBlob(layout, manifest.digest));
    const { layers } = JSON.parse(served.toString('utf8')) as { layers: { digest: string }[] };
    assert.equal(layers.length, 2);
    for (const layer of layers) {
      const blob = await fetch(`http://${registry.host}/v2/team/fixture/blobs/${layer.digest}`);
      assert.deepEqual(Buffer.from(await blob.arrayBuffer()), layoutBlob(layout, layer.digest));
    }
    const inspect = spawnSync('skopeo', ['inspect', '--tls-verify=false', `docker://${registry.host}/team/fixture:v1`], { encoding: 'utf8' });
    assert.equal(inspect.status, 0, inspect.stderr);
    assert.equal((JSON.parse(inspect.stdout) as { Architecture: string }).Architecture, 'amd64');
  });

  test('the client pulls the pushed image from the real registry: manifest, verified blobs, then all from its cache', async () => {
    const tree = join(root, 'client-tree');
    mkdirSync(join(tree, 'srv'), { recursive: true });
    writeFileSync(join(tree, 'srv', 'data'), 'x'.repeat(100_000));
    const layout = join(root, 'client-layout');
    const pushed = buildOciLayout(layout, 'v2', [tree]);
    registry.push(layout, 'v2', 'team/client');

    const client = new RegistryClient();
    const ref = parseReference(`${registry.host}/team/client:v2`);
    const { digest, manifest } = await client.getImageManifest(ref);
    assert.equal(digest, pushed.digest);
    const cache = join(root, 'blob-cache');
    const seen: string[] = [];
    for (const layer of [manifest.config, ...manifest.layers]) {
      const path = await client.fetchBlob(ref, layer.digest, cache, { size: layer.size, onProgress: (p) => seen.push(p.digest) });
      assert.deepEqual(readFileSync(path), layoutBlob(layout, layer.digest));
    }
    assert.ok(seen.length > 0, 'progress was reported');
    // A second pull finds every blob in the cache: the registry is not asked (it is gone).
    registry.close();
    for (const layer of [manifest.config, ...manifest.layers]) {
      assert.deepEqual(readFileSync(await client.fetchBlob(ref, layer.digest, cache, { size: layer.size })), layoutBlob(layout, layer.digest));
    }
    registry = await TestRegistry.start();
  });

  test('the client says a missing tag is not found', async () => {
    const client = new RegistryClient();
    await assert.rejects(client.getImageManifest(parseReference(`${registry.host}/team/fixture:nope`)), { code: 'ERR_NOT_FOUND' });
  });

  test('a tag that was never pushed is a 404', async () => {
    const response = await fetch(`http://${registry.host}/v2/team/fixture/manifests/missing`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(response.status, 404);
  });
});
