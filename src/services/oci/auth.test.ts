import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { credentialsFromDockerConfig, parseWwwAuthenticate, RegistryAuth } from './auth.js';

const servers: Server[] = [];
after(() => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

/** A token service: anonymous tokens unless `user` is set, then only for user:secret. Records every request. */
async function tokenService(options: { user?: string; body?: (n: number) => unknown } = {}): Promise<{ realm: string; requests: IncomingMessage[] }> {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    const expected = options.user === undefined ? undefined : `Basic ${Buffer.from(`${options.user}:secret`).toString('base64')}`;
    if (expected !== undefined && req.headers.authorization !== expected) {
      res.writeHead(401).end();
      return;
    }
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify(options.body?.(requests.length) ?? { token: `t${requests.length}`, expires_in: 300 }));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { realm: `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`, requests };
}

const authCode = (error: unknown): boolean => error instanceof BangerError && error.code === 'ERR_REGISTRY_AUTH';

test('a Bearer challenge yields realm, service and a quoted scope with commas', () => {
  assert.deepEqual(
    parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull,push"'),
    {
      scheme: 'bearer',
      realm: 'https://auth.docker.io/token',
      service: 'registry.docker.io',
      scope: 'repository:library/debian:pull,push',
    },
  );
  assert.deepEqual(parseWwwAuthenticate('bearer realm=http://x/t'), { scheme: 'bearer', realm: 'http://x/t', service: undefined, scope: undefined });
  assert.deepEqual(parseWwwAuthenticate('Basic realm="Registry Realm"'), { scheme: 'basic' });
  assert.equal(parseWwwAuthenticate('Bearer service="x"'), undefined);
  assert.equal(parseWwwAuthenticate('Negotiate abc'), undefined);
});

test('docker config credentials are found by host, and Hub keys written as URLs map to docker.io', () => {
  const config = {
    auths: {
      'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
      'registry.example.com': { username: 'u', password: 'p' },
      'helper.example.com': {},
    },
    credsStore: 'desktop',
  };
  assert.deepEqual(credentialsFromDockerConfig(config, 'docker.io'), { username: 'hubuser', password: 'hub:pass' });
  assert.deepEqual(credentialsFromDockerConfig(config, 'registry.example.com'), { username: 'u', password: 'p' });
  assert.equal(credentialsFromDockerConfig(config, 'helper.example.com'), undefined);
  assert.equal(credentialsFromDockerConfig(config, 'other.example.com'), undefined);
  assert.equal(credentialsFromDockerConfig(null, 'docker.io'), undefined);
});

test('an anonymous token is fetched with service and scope and cached per scope until it expires', async () => {
  const { realm, requests } = await tokenService();
  let now = 1_000_000;
  const auth = new RegistryAuth({ now: () => now });
  const challenge = { scheme: 'bearer' as const, realm, service: 'fake', scope: undefined };
  assert.equal(auth.cached('r', 'repository:a:pull'), undefined);
  assert.equal(await auth.authorize('r', challenge, 'repository:a:pull'), 'Bearer t1');
  assert.equal(requests[0]?.headers.authorization, undefined);
  assert.equal(requests[0]?.url, '/token?service=fake&scope=repository%3Aa%3Apull');
  assert.equal(auth.cached('r', 'repository:a:pull'), 'Bearer t1');
  assert.equal(auth.cached('r', 'repository:b:pull'), undefined);
  now += 300_000;
  assert.equal(auth.cached('r', 'repository:a:pull'), undefined, 'an expired token is not reused');
  assert.equal(await auth.authorize('r', challenge, 'repository:a:pull'), 'Bearer t2');
});

test('basic credentials are sent to the token service; wrong ones fail with ERR_REGISTRY_AUTH naming the user', async () => {
  const { realm } = await tokenService({ user: 'alice' });
  const challenge = { scheme: 'bearer' as const, realm, service: undefined, scope: 'repository:a:pull' };
  const good = new RegistryAuth({ credentials: () => ({ username: 'alice', password: 'secret' }) });
  assert.equal(await good.authorize('r', challenge, 'repository:a:pull'), 'Bearer t1');
  const bad = new RegistryAuth({ credentials: () => ({ username: 'alice', password: 'wrong' }) });
  await assert.rejects(bad.authorize('r', challenge, 'repository:a:pull'), (error: unknown) => authCode(error) && (error as Error).message.includes('alice'));
  await assert.rejects(
    new RegistryAuth().authorize('r', challenge, 'repository:a:pull'),
    (error: unknown) => authCode(error) && (error as Error).message.includes('anonymous'),
  );
});

test('access_token is accepted and a response without a token is an error', async () => {
  const { realm } = await tokenService({ body: (n) => (n === 1 ? { access_token: 'at' } : { nothing: true }) });
  const auth = new RegistryAuth();
  const challenge = { scheme: 'bearer' as const, realm, service: undefined, scope: undefined };
  assert.equal(await auth.authorize('r', challenge, 's'), 'Bearer at');
  await assert.rejects(auth.authorize('r', challenge, 's'), (error: unknown) => error instanceof BangerError && error.code === 'ERR_DOWNLOAD_FAILED');
});

test('a Basic challenge sends the credentials, or asks for a login when there are none', async () => {
  const auth = new RegistryAuth({ credentials: (registry) => (registry === 'r' ? { username: 'u', password: 'p' } : undefined) });
  assert.equal(await auth.authorize('r', { scheme: 'basic' }, 's'), `Basic ${Buffer.from('u:p').toString('base64')}`);
  await assert.rejects(auth.authorize('other', { scheme: 'basic' }, 's'), authCode);
});
