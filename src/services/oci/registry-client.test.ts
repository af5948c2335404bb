import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { MEDIA_TYPES } from './manifest.js';
import { parseReference } from './reference.js';
import { RegistryClient } from './registry-client.js';
import { dockerConfigLookup } from './docker-config.js';

/**
 * A fake registry on 127.0.0.1 that implements the v2 endpoints the client
 * uses, with Bearer token auth from its own /token realm. Tests poke its
 * state to misbehave: revoke tokens, corrupt or stall blobs, rate limit.
 * Deadlines are injected as a few ms; no test waits on the defaults.
 */

const root = mkdtempSync(join(tmpdir(), 'banger-oci-'));
const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  rmSync(root, { recursive: true, force: true });
});

const sha = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

interface FakeRegistry {
  host: string;
  manifests: Map<string, { type: string; body: string }>;
  blobs: Map<string, Buffer>;
  /** Tokens the registry accepts; clear it to revoke. */
  valid: Set<string>;
  log: { path: string; accept: string | undefined; authorization: string | undefined }[];
  tokensIssued: number;
  /** When set, the registry wants this Basic `Authorization` (like docker-registry with htpasswd) instead of tokens. */
  basic: string | undefined;
  /** Overrides the normal answer for a request path when it returns true. */
  misbehave: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

async function fakeRegistry(): Promise<FakeRegistry> {
  const state: FakeRegistry = {
    host: '',
    manifests: new Map(),
    blobs: new Map(),
    valid: new Set(),
    log: [],
    tokensIssued: 0,
    basic: undefined,
    misbehave: undefined,
  };
  const server = createServer((req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/token')) {
      const token = `tok${++state.tokensIssued}`;
      state.valid.add(token);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    state.log.push({ path, accept: req.headers.accept, authorization: req.headers.authorization });
    const token = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    if (state.basic !== undefined && req.headers.authorization !== state.basic) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="Registry Realm"' }).end();
      return;
    }
    if (state.basic === undefined && !state.valid.has(token)) {
      const realm = `http://${state.host}/token`;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="fake",scope="repository:team/dev:pull"` }).end();
      return;
    }
    if (state.misbehave?.(req, res) === true) return;
    const manifest = /^\/v2\/team\/dev\/manifests\/(.+)$/.exec(path);
    if (manifest !== null) {
      const found = state.manifests.get(decodeURIComponent(manifest[1] ?? ''));
      if (found === undefined) res.writeHead(404).end();
      else res.writeHead(200, { 'content-type': found.type, 'docker-content-digest': sha(found.body) }).end(found.body);
      return;
    }
    const blob = /^\/v2\/team\/dev\/blobs\/(.+)$/.exec(path);
    const data = blob === null ? undefined : state.blobs.get(decodeURIComponent(blob[1] ?? ''));
    if (data === undefined) res.writeHead(404).end();
    else res.writeHead(200, { 'content-length': String(data.length) }).end(data);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

const LAYER = Buffer.alloc(3 * 1024 * 1024, 'layer');
const CONFIG = Buffer.from('{"architecture":"amd64","os":"linux"}');
const desc = (mediaType: string, data: Buffer | string, platform?: object) => ({
  mediaType,
  digest: sha(data),
  size: Buffer.byteLength(data),
  ...(platform ? { platform } : {}),
});
const imageManifest = (type: string) =>
  JSON.stringify({
    schemaVersion: 2,
    mediaType: type,
    config: desc('application/vnd.oci.image.config.v1+json', CONFIG),
    layers: [desc('application/vnd.oci.image.layer.v1.tar+gzip', LAYER)],
  });

async function withImage(): Promise<FakeRegistry> {
  const registry = await fakeRegistry();
  const amd64 = imageManifest(MEDIA_TYPES.ociManifest);
  const arm64 = imageManifest(MEDIA_TYPES.dockerManifest).replace('amd64', 'arm64');
  for (const body of [amd64, arm64]) registry.manifests.set(sha(body), { type: MEDIA_TYPES.ociManifest, body });
  const index = (entries: object[]) => JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: entries });
  registry.manifests.set('multi', {
    type: MEDIA_TYPES.ociIndex,
    body: index([
      desc(MEDIA_TYPES.ociManifest, arm64, { os: 'linux', architecture: 'arm64' }),
      desc(MEDIA_TYPES.ociManifest, amd64, { os: 'linux', architecture: 'amd64' }),
    ]),
  });
  registry.manifests.set('armonly', {
    type: MEDIA_TYPES.dockerList,
    body: index([desc(MEDIA_TYPES.dockerManifest, arm64, { os: 'linux', architecture: 'arm64', variant: 'v8' })]),
  });
  registry.manifests.set('1', { type: MEDIA_TYPES.dockerManifest, body: imageManifest(MEDIA_TYPES.dockerManifest) });
  registry.blobs.set(sha(LAYER), LAYER);
  registry.blobs.set(sha(CONFIG), CONFIG);
  return registry;
}

const client = () => new RegistryClient({ responseTimeoutMs: 5_000, stallTimeoutMs: 5_000 });
const isCode = (code: string, message?: RegExp) => (error: unknown) =>
  error instanceof BangerError && error.code === code && (message === undefined || message.test(error.message));

test('a tagged Docker schema2 manifest is fetched after an anonymous token exchange, with the Accept list', async () => {
  const registry = await withImage();
  const result = await client().getManifest(parseReference(`${registry.host}/team/dev:1`));
  assert.equal(result.manifest.kind, 'image');
  assert.equal(result.manifest.mediaType, MEDIA_TYPES.dockerManifest);
  assert.equal(result.digest, sha(registry.manifests.get('1')?.body ?? ''));
  assert.equal(registry.log.length, 2, 'one 401, one retry with the token');
  assert.equal(registry.log[1]?.authorization, 'Bearer tok1');
  for (const type of Object.values(MEDIA_TYPES)) assert.ok(registry.log[0]?.accept?.includes(type), type);
});

test('an OCI index resolves to its linux/amd64 manifest, fetched by digest with the cached token', async () => {
  const registry = await withImage();
  const result = await client().getImageManifest(parseReference(`${registry.host}/team/dev:multi`));
  assert.equal(result.manifest.layers[0]?.digest, sha(LAYER));
  assert.equal(result.manifest.config.digest, sha(CONFIG));
  assert.match(registry.log.at(-1)?.path ?? '', /\/manifests\/sha256:/);
  assert.equal(registry.tokensIssued, 1);
});

test('a manifest list without linux/amd64 fails with ERR_NOT_FOUND naming the platforms it has', async () => {
  const registry = await withImage();
  await assert.rejects(
    client().getImageManifest(parseReference(`${registry.host}/team/dev:armonly`)),
    isCode('ERR_NOT_FOUND', /no linux\/amd64.*linux\/arm64\/v8/),
  );
});

test('a pinned digest that the served manifest does not match fails with ERR_VERIFY_FAILED', async () => {
  const registry = await withImage();
  const wrong = `sha256:${'0'.repeat(64)}`;
  registry.manifests.set(wrong, { type: MEDIA_TYPES.ociManifest, body: imageManifest(MEDIA_TYPES.ociManifest) });
  await assert.rejects(client().getManifest(parseReference(`${registry.host}/team/dev@${wrong}`)), isCode('ERR_VERIFY_FAILED'));
});

test('a missing tag and a missing blob fail with ERR_NOT_FOUND', async () => {
  const registry = await withImage();
  const ref = parseReference(`${registry.host}/team/dev:nope`);
  await assert.rejects(client().getManifest(ref), isCode('ERR_NOT_FOUND', /team\/dev:nope/));
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(client().fetchBlob(ref, sha('absent'), cache), isCode('ERR_NOT_FOUND'));
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), []);
});

test('a blob lands verified in blobs/sha256/<hex> with progress, and a cached blob needs no request', async () => {
  const registry = await withImage();
  const cache = mkdtempSync(join(root, 'cache-'));
  const ref = parseReference(`${registry.host}/team/dev:1`);
  const c = client();
  const progress: number[] = [];
  const path = await c.fetchBlob(ref, sha(LAYER), cache, { onProgress: (p) => progress.push(p.received) });
  assert.equal(path, join(cache, 'blobs', 'sha256', sha(LAYER).slice(7)));
  assert.ok(readFileSync(path).equals(LAYER));
  assert.equal(progress.at(-1), LAYER.length);
  const requests = registry.log.length;
  assert.equal(await c.fetchBlob(ref, sha(LAYER), cache), path);
  assert.equal(registry.log.length, requests, 'served from the cache');
  writeFileSync(path, 'damaged');
  assert.ok(readFileSync(await c.fetchBlob(ref, sha(LAYER), cache)).equals(LAYER), 'a damaged cached blob is downloaded again');
  assert.equal(registry.log.length, requests + 1);
});

test('a blob whose content does not match its digest fails with ERR_VERIFY_FAILED and leaves nothing behind', async () => {
  const registry = await withImage();
  registry.blobs.set(sha(CONFIG), Buffer.from('tampered'));
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(client().fetchBlob(parseReference(`${registry.host}/team/dev:1`), sha(CONFIG), cache), isCode('ERR_VERIFY_FAILED'));
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), []);
});

test('a revoked token is replaced once after a 401; a registry that keeps refusing fails with ERR_REGISTRY_AUTH', async () => {
  const registry = await withImage();
  const ref = parseReference(`${registry.host}/team/dev:1`);
  const c = client();
  await c.getManifest(ref);
  registry.valid.clear();
  const cache = mkdtempSync(join(root, 'cache-'));
  await c.fetchBlob(ref, sha(CONFIG), cache);
  assert.equal(registry.tokensIssued, 2);
  assert.deepEqual(
    registry.log.slice(-2).map((entry) => entry.authorization),
    ['Bearer tok1', 'Bearer tok2'],
  );
  registry.misbehave = (_req, res) => {
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${registry.host}/token"` }).end();
    return true;
  };
  const before = registry.log.length;
  await assert.rejects(c.fetchBlob(ref, sha(LAYER), cache), isCode('ERR_REGISTRY_AUTH', /bad or missing credentials/));
  assert.equal(registry.log.length - before, 2, 'exactly one retry');
});

test('429 fails with ERR_RATE_LIMITED quoting Retry-After', async () => {
  const registry = await withImage();
  registry.misbehave = (_req, res) => {
    res.writeHead(429, { 'retry-after': '120' }).end();
    return true;
  };
  await assert.rejects(client().getManifest(parseReference(`${registry.host}/team/dev:1`)), isCode('ERR_RATE_LIMITED', /retry after 120 s/));
});

test('a blob transfer that stalls fails with ERR_DOWNLOAD_FAILED and leaves no file', async () => {
  const registry = await withImage();
  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    res.writeHead(200, { 'content-length': String(LAYER.length) });
    res.write(LAYER.subarray(0, 1000));
    return true;
  };
  const cache = mkdtempSync(join(root, 'cache-'));
  const stalling = new RegistryClient({ responseTimeoutMs: 5_000, stallTimeoutMs: 30 });
  await assert.rejects(
    stalling.fetchBlob(parseReference(`${registry.host}/team/dev:1`), sha(LAYER), cache),
    isCode('ERR_DOWNLOAD_FAILED', /stalled.*after 1000 bytes/),
  );
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), []);
});

test('a cancelled blob download fails with the caller reason and leaves no file', async () => {
  const registry = await withImage();
  const controller = new AbortController();
  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    res.writeHead(200, { 'content-length': String(LAYER.length) });
    res.write(LAYER.subarray(0, 1000), () => {
      controller.abort(new BangerError('ERR_CANCELLED', 'pull cancelled'));
    });
    return true;
  };
  const cache = mkdtempSync(join(root, 'cache-'));
  await assert.rejects(
    client().fetchBlob(parseReference(`${registry.host}/team/dev:1`), sha(LAYER), cache, { signal: controller.signal }),
    isCode('ERR_CANCELLED'),
  );
  assert.equal(existsSync(join(cache, 'blobs', 'sha256', sha(LAYER).slice(7))), false);
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), []);
});

test('a blob redirected to another origin (a CDN) is followed without the registry token', async () => {
  const registry = await withImage();
  const seen: (string | undefined)[] = [];
  const cdn = createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(200).end(CONFIG);
  });
  servers.push(cdn);
  await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    res.writeHead(307, { location: `http://localhost:${(cdn.address() as AddressInfo).port}/cdn/config` }).end();
    return true;
  };
  const cache = mkdtempSync(join(root, 'cache-'));
  const path = await client().fetchBlob(parseReference(`${registry.host}/team/dev:1`), sha(CONFIG), cache);
  assert.ok(readFileSync(path).equals(CONFIG));
  assert.deepEqual(seen, [undefined]);
});

test('a registry that never answers fails with ERR_DOWNLOAD_FAILED after the response deadline', async () => {
  const registry = await withImage();
  registry.misbehave = () => true;
  const silent = new RegistryClient({ responseTimeoutMs: 30, stallTimeoutMs: 5_000 });
  await assert.rejects(silent.getManifest(parseReference(`${registry.host}/team/dev:1`)), isCode('ERR_DOWNLOAD_FAILED', /no response within 30 ms/));
});

test('a 404 naming an unknown repository says so; other 404s keep the registry code', async () => {
  const registry = await withImage();
  registry.misbehave = (req, res) => {
    const code = (req.url ?? '').includes('/blobs/') ? 'BLOB_UNKNOWN' : 'NAME_UNKNOWN';
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code, message: 'x' }] }));
    return true;
  };
  const ref = parseReference(`${registry.host}/team/dev:1`);
  await assert.rejects(client().getManifest(ref), isCode('ERR_NOT_FOUND', /has no repository team\/dev$/));
  await assert.rejects(client().fetchBlob(ref, sha(CONFIG), mkdtempSync(join(root, 'cache-'))), isCode('ERR_NOT_FOUND', /BLOB_UNKNOWN/));
});

test('a blob body longer than its descriptor size is cut off with ERR_VERIFY_FAILED and leaves no file', async () => {
  const registry = await withImage();
  const cache = mkdtempSync(join(root, 'cache-'));
  const ref = parseReference(`${registry.host}/team/dev:1`);
  await assert.rejects(client().fetchBlob(ref, sha(LAYER), cache, { size: 1024 }), isCode('ERR_VERIFY_FAILED', /larger than its manifest says \(1024 bytes\)/));
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), []);
  assert.ok(readFileSync(await client().fetchBlob(ref, sha(LAYER), cache, { size: LAYER.length })).equals(LAYER));
});

test('a Basic-auth registry gets the docker config login, and a wrong one fails with ERR_REGISTRY_AUTH', async () => {
  const registry = await withImage();
  registry.basic = `Basic ${Buffer.from('dev:pw').toString('base64')}`;
  const ref = parseReference(`${registry.host}/team/dev:1`);
  const login = (pass: string) => ({ auths: { [registry.host]: { auth: Buffer.from(`dev:${pass}`).toString('base64') } } });
  const good = new RegistryClient({ credentials: dockerConfigLookup(login('pw')) });
  assert.equal((await good.getManifest(ref)).manifest.kind, 'image');
  assert.equal(registry.log.at(-1)?.authorization, registry.basic);
  await assert.rejects(new RegistryClient({ credentials: dockerConfigLookup(login('nope')) }).getManifest(ref), isCode('ERR_REGISTRY_AUTH'));
  await assert.rejects(new RegistryClient().getManifest(ref), isCode('ERR_REGISTRY_AUTH', /requires a login/));
});

test('a blob transfer cut off part way is resumed with a ranged request and still verified whole', async () => {
  const registry = await withImage();
  const ranges: (string | undefined)[] = [];
  let first = true;
  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    ranges.push(req.headers.range);
    if (first) {
      first = false;
      res.writeHead(200, { 'content-length': String(LAYER.length) });
      res.write(LAYER.subarray(0, 1024 * 1024), () => res.destroy());
      return true;
    }
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(from > 0 ? 206 : 200, { 'content-length': String(LAYER.length - from) }).end(LAYER.subarray(from));
    return true;
  };
  const cache = mkdtempSync(join(root, 'cache-'));
  const ref = parseReference(`${registry.host}/team/dev:1`);
  await assert.rejects(client().fetchBlob(ref, sha(LAYER), cache, { size: LAYER.length }), isCode('ERR_DOWNLOAD_FAILED'));
  assert.deepEqual(readdirSync(join(cache, 'blobs', 'sha256')), [], 'nothing half-done is in the blob cache');
  const kept = readFileSync(join(cache, 'partial', sha(LAYER).slice(7))).length;
  assert.ok(kept > 0 && kept < LAYER.length, `part of the blob was kept (${kept} bytes)`);
  const progress: number[] = [];
  const path = await client().fetchBlob(ref, sha(LAYER), cache, { size: LAYER.length, onProgress: (p) => progress.push(p.received) });
  assert.ok(readFileSync(path).equals(LAYER));
  assert.deepEqual(ranges, [undefined, `bytes=${kept}-`]);
  assert.equal(progress.at(-1), LAYER.length);
  assert.deepEqual(readdirSync(join(cache, 'partial')), [], 'the partial file became the blob');
});

test('a kept partial that is wrong is dropped and the blob fetched again from the start; a registry ignoring Range is fine', async () => {
  const registry = await withImage();
  const ranges: (string | undefined)[] = [];
  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    ranges.push(req.headers.range);
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(from > 0 ? 206 : 200, { 'content-length': String(LAYER.length - from) }).end(LAYER.subarray(from));
    return true;
  };
  const cache = mkdtempSync(join(root, 'cache-'));
  const ref = parseReference(`${registry.host}/team/dev:1`);
  const partialDir = join(cache, 'partial');
  mkdirSync(partialDir, { recursive: true });
  writeFileSync(join(partialDir, sha(LAYER).slice(7)), Buffer.alloc(1000, 'x'));
  assert.ok(readFileSync(await client().fetchBlob(ref, sha(LAYER), cache, { size: LAYER.length })).equals(LAYER));
  assert.deepEqual(ranges, ['bytes=1000-', undefined], 'resumed, found wrong, fetched whole');

  registry.misbehave = (req, res) => {
    if (!(req.url ?? '').includes('/blobs/')) return false;
    ranges.push(req.headers.range);
    res.writeHead(200, { 'content-length': String(CONFIG.length) }).end(CONFIG);
    return true;
  };
  writeFileSync(join(partialDir, sha(CONFIG).slice(7)), CONFIG.subarray(0, 5));
  assert.ok(
    readFileSync(await client().fetchBlob(ref, sha(CONFIG), cache, { size: CONFIG.length })).equals(CONFIG),
    'a 200 answer to a ranged request starts over',
  );
});
