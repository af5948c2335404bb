import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../../rpc/errors.js';
import { dockerConfigLookup, execHelper, type HelperRunner } from './docker-config.js';

const root = mkdtempSync(join(tmpdir(), 'banger-oci-helper-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A runner that answers from a table and records the calls. */
function fakeRunner(answers: Record<string, string | Error>): { run: HelperRunner; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run: (program, input) => {
      calls.push(`${program} ${input}`);
      const answer = answers[`${program} ${input}`];
      if (answer === undefined) return Promise.reject(new Error('credentials not found in native keychain'));
      return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
    },
  };
}

const secret = (user: string, pass: string) => JSON.stringify({ ServerURL: 'x', Username: user, Secret: pass });

test('credHelpers wins for its host, credsStore covers the rest, and Hub is asked under its v1 URL', async () => {
  const { run, calls } = fakeRunner({
    'docker-credential-gcr gcr.io': secret('oauth2accesstoken', 'g'),
    'docker-credential-desktop https://index.docker.io/v1/': secret('hub', 'h'),
  });
  const lookup = dockerConfigLookup({ credHelpers: { 'gcr.io': 'gcr' }, credsStore: 'desktop' }, run);
  assert.deepEqual(await lookup('gcr.io'), { username: 'oauth2accesstoken', password: 'g' });
  assert.deepEqual(await lookup('docker.io'), { username: 'hub', password: 'h' });
  assert.deepEqual(calls, ['docker-credential-gcr gcr.io', 'docker-credential-desktop https://index.docker.io/v1/']);
});

test('not found in the helper falls back to auths; no helper reads auths alone', async () => {
  const { run } = fakeRunner({});
  const auths = { 'reg.example.com': { auth: Buffer.from('u:p').toString('base64') } };
  assert.deepEqual(await dockerConfigLookup({ credsStore: 'desktop', auths }, run)('reg.example.com'), { username: 'u', password: 'p' });
  assert.equal(await dockerConfigLookup({ credsStore: 'desktop' }, run)('other.example.com'), undefined);
  assert.deepEqual(await dockerConfigLookup({ auths }, () => Promise.reject(new Error('must not run')))('reg.example.com'), { username: 'u', password: 'p' });
});

test('an identity token counts as no credentials; a failing helper is ERR_REGISTRY_AUTH', async () => {
  const { run } = fakeRunner({
    'docker-credential-s a.io': secret('<token>', 'refresh'),
    'docker-credential-s b.io': new Error('exit status 1: the keyring is locked'),
    'docker-credential-s c.io': 'not json',
  });
  const lookup = dockerConfigLookup({ credsStore: 's' }, run);
  assert.equal(await lookup('a.io'), undefined);
  await assert.rejects(
    Promise.resolve(lookup('b.io')),
    (error: unknown) => error instanceof BangerError && error.code === 'ERR_REGISTRY_AUTH' && error.message.includes('keyring is locked'),
  );
  await assert.rejects(Promise.resolve(lookup('c.io')), (error: unknown) => error instanceof BangerError && error.code === 'ERR_REGISTRY_AUTH');
});

test('the default runner runs docker-credential-<name> get from PATH with the server URL on stdin', async () => {
  const script = join(root, 'docker-credential-fake');
  writeFileSync(
    script,
    '#!/bin/sh\n[ "$1" = get ] || exit 2\nread url\nif [ "$url" = known.io ]; then echo \'{"Username":"me","Secret":"s3"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
  );
  chmodSync(script, 0o755);
  const lookup = dockerConfigLookup({ credsStore: 'fake' }, execHelper({ PATH: `${root}:/usr/bin:/bin` }));
  assert.deepEqual(await lookup('known.io'), { username: 'me', password: 's3' });
  assert.equal(await lookup('unknown.io'), undefined);
});
