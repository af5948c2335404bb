import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { forgetHosts, knownHostEntries, verifyOrPin } from './known-hosts.js';

const root = mkdtempSync(join(tmpdir(), 'banger-known-hosts-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const keyA = { type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIAAAA' };
const keyB = { type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIBBBB' };

test('the first key seen for a host is pinned, in OpenSSH format, 0600', () => {
  const file = join(root, 'ssh', 'known_hosts');
  assert.equal(verifyOrPin(file, '10.0.0.2', keyA), true);
  assert.equal(readFileSync(file, 'utf8'), `10.0.0.2 ${keyA.type} ${keyA.key}\n`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(root, 'ssh')).mode & 0o777, 0o700);
});

test('the same key is accepted again; a different one is refused as a possible MITM', () => {
  const file = join(root, 'kh2');
  verifyOrPin(file, '10.0.0.2', keyA);
  assert.equal(verifyOrPin(file, '10.0.0.2', keyA), true);
  assert.throws(
    () => verifyOrPin(file, '10.0.0.2', keyB),
    (e: unknown) =>
      e instanceof BangerError &&
      e.code === 'ERR_HOST_KEY_MISMATCH' &&
      e.message.includes('possible MITM') &&
      (e.hint ?? '').includes('ssh-keygen -R 10.0.0.2'),
  );
  assert.equal(knownHostEntries(file, '10.0.0.2').length, 1, 'the mismatch did not overwrite the pin');
});

test('forgetting hosts removes only their lines, so a new VM on the address re-pins', () => {
  const file = join(root, 'kh3');
  writeFileSync(file, `10.0.0.2 ${keyA.type} ${keyA.key}\nbox,box.vm ${keyA.type} ${keyA.key}\n10.0.0.3 ${keyB.type} ${keyB.key}\n`);
  forgetHosts(file, ['10.0.0.2', 'box']);
  assert.equal(readFileSync(file, 'utf8'), `10.0.0.3 ${keyB.type} ${keyB.key}\n`);
  assert.equal(verifyOrPin(file, '10.0.0.2', keyB), true);
});
