import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { installInclude, userSshConfigPath } from '../guest/ssh-config.js';
import { sshConfigCheck } from './ssh-config-check.js';

const home = mkdtempSync(join(tmpdir(), 'banger-doctor-ssh-'));
after(() => {
  rmSync(home, { recursive: true, force: true });
});
const layout = { sshConfig: join(home, '.config', 'banger', 'ssh_config') };

test('no ssh_config yet passes; written but not included warns with the fix; included passes', () => {
  const none = sshConfigCheck(layout, home);
  assert.equal(none.status, 'pass');
  assert.match(none.detail, /not written yet/);

  mkdirSync(join(home, '.config', 'banger'), { recursive: true });
  writeFileSync(layout.sshConfig, 'Host *.vm\n  User root\n');
  const missing = sshConfigCheck(layout, home);
  assert.equal(missing.id, 'ssh-config');
  assert.equal(missing.status, 'warn');
  assert.equal(missing.hint, 'banger ssh-config --install');

  installInclude(userSshConfigPath(home), layout.sshConfig);
  const included = sshConfigCheck(layout, home);
  assert.equal(included.status, 'pass');
  assert.equal(included.hint, undefined);
});

test('an unreadable ~/.ssh/config warns (never fails)', () => {
  const other = mkdtempSync(join(tmpdir(), 'banger-doctor-ssh-'));
  try {
    mkdirSync(join(other, '.ssh', 'config'), { recursive: true }); // a directory where the file should be
    const result = sshConfigCheck(layout, other);
    assert.equal(result.status, 'warn');
  } finally {
    rmSync(other, { recursive: true, force: true });
  }
});
