import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { forgetHosts, keepEntries, knownHostEntries, pinHostKey, verifyPinned } from './known-hosts.js';

const root = mkdtempSync(join(tmpdir(), 'banger-known-hosts-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const keyA = { type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIAAAA' };
const keyB = { type: 'ssh-ed25519', key: 'AAAAC3NzaC1lZDI1NTE5AAAAIBBBB' };

test("a VM's key is pinned under its address and names, in OpenSSH format, 0600, replacing an older pin", () => {
  const file = join(root, 'ssh', 'known_hosts');
  pinHostKey(file, ['10.0.0.2', 'box', 'box.vm'], `${keyB.type} ${keyB.key} root@old`);
  pinHostKey(file, ['10.0.0.2', 'box', 'box.vm'], `${keyA.type} ${keyA.key} root@box`);
  assert.equal(readFileSync(file, 'utf8'), `10.0.0.2,box,box.vm ${keyA.type} ${keyA.key}\n`);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(join(root, 'ssh')).mode & 0o777, 0o700);
});

test('the pinned key is accepted; another is refused as a possible MITM; an unpinned host is refused', () => {
  const file = join(root, 'kh2');
  pinHostKey(file, ['10.0.0.2'], `${keyA.type} ${keyA.key}`);
  assert.equal(verifyPinned(file, '10.0.0.2', keyA), true);
  assert.throws(
    () => verifyPinned(file, '10.0.0.2', keyB),
    (e: unknown) =>
      e instanceof BangerError &&
      e.code === 'ERR_HOST_KEY_MISMATCH' &&
      e.message.includes('possible MITM') &&
      (e.hint ?? '').includes('ssh-keygen -R 10.0.0.2'),
  );
  assert.equal(knownHostEntries(file, '10.0.0.2').length, 1, 'the mismatch did not overwrite the pin');
  assert.throws(
    () => verifyPinned(file, '10.0.0.9', keyA),
    (e: unknown) => e instanceof BangerError && e.code === 'ERR_HOST_KEY_UNKNOWN',
  );
  assert.equal(knownHostEntries(file, '10.0.0.9').length, 0, 'nothing is pinned on first use');
});

test('forgetting hosts removes only their lines', () => {
  const file = join(root, 'kh3');
  writeFileSync(file, `10.0.0.2 ${keyA.type} ${keyA.key}\nbox,box.vm ${keyA.type} ${keyA.key}\n10.0.0.3 ${keyB.type} ${keyB.key}\n`);
  forgetHosts(file, ['10.0.0.2', 'box']);
  assert.equal(readFileSync(file, 'utf8'), `10.0.0.3 ${keyB.type} ${keyB.key}\n`);
});

test('keepEntries drops the entries not wanted, atomically, and says how many', () => {
  const file = join(root, 'kh4');
  writeFileSync(file, `# banger\n10.0.0.2,box,box.vm ${keyA.type} ${keyA.key}\n10.0.0.3,lost,lost.vm ${keyB.type} ${keyB.key}\n`);
  assert.equal(
    keepEntries(file, (hosts) => hosts.includes('box')),
    1,
  );
  assert.equal(readFileSync(file, 'utf8'), `# banger\n10.0.0.2,box,box.vm ${keyA.type} ${keyA.key}\n`);
  assert.equal(
    keepEntries(file, () => true),
    0,
  );
  assert.equal(statSync(file).mode & 0o777, 0o600);
});
