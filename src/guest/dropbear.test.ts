import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';

import { BANGER_SSH_DIR, dropbearBundle, dropbearHostKey } from './dropbear.js';

/**
 * banger's SSH server bundle and host key conversion against the real
 * dropbear tools (Debian's dropbear-bin, a host package banger needs).
 */

const root = mkdtempSync(join(tmpdir(), 'banger-dropbear-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('an OpenSSH ed25519 key converts to exactly what dropbearconvert writes', () => {
  const key = join(root, 'host_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'root@test', '-f', key]);
  const expected = join(root, 'host_key.dropbear');
  execFileSync('dropbearconvert', ['openssh', 'dropbear', key, expected], { stdio: 'ignore' });
  assert.deepEqual(dropbearHostKey(readFileSync(key, 'utf8')), readFileSync(expected));
  assert.throws(() => dropbearHostKey('-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n'));
});

test('the bundle runs on its own: dropbear through the bundled loader and libraries only', async () => {
  const bundle = await dropbearBundle();
  const names = bundle.map((file) => file.path);
  assert.ok(names.includes(`${BANGER_SSH_DIR}/dropbear`));
  assert.ok(names.includes(`${BANGER_SSH_DIR}/ld.so`));
  assert.ok(names.includes(`${BANGER_SSH_DIR}/lib/libc.so.6`));
  const dir = join(root, 'image');
  for (const file of bundle) {
    const path = join(dir, file.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.content, { mode: file.mode });
  }
  const ssh = join(dir, BANGER_SSH_DIR);
  // --library-path replaces the host's search path: only the bundled libraries can satisfy dropbear.
  const run = spawnSync(join(ssh, 'ld.so'), ['--library-path', join(ssh, 'lib'), '--inhibit-cache', join(ssh, 'dropbear'), '-V'], { encoding: 'utf8' });
  assert.match(`${run.stdout}${run.stderr}`, /Dropbear v\d+/);
});
