import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { HELPER_CONFIG, helperSocketPath } from '../../src/root-helper/protocol.js';
import { INSTALL_DIR } from '../../src/root-helper/install.js';
import { asUser, ensureTestUser, type TestUser } from '../helpers/test-user.js';
import { BANGER_BIN, BangerWorld } from './harness.js';

interface DoctorCheck {
  id: string;
  status: string;
  detail: string;
  hint?: string;
}

/**
 * `sudo banger system install` for real (CI runs as root): the helper's code
 * lands root-owned, the user's policy is recorded, the service answers on the
 * user's socket, and doctor, run as that user, goes from failing (with the
 * install command as its hint) to passing. Uninstall removes it all again.
 */
describe('banger system install', { timeout: 120_000 }, () => {
  let user: TestUser;
  let world: BangerWorld;
  /** Whether other users' policies exist (then uninstall keeps the helper for them). */
  let hadConfig = false;

  before(() => {
    user = ensureTestUser();
    world = new BangerWorld({ user });
    // The world's own socket override would hide the installed helper.
    delete world.env.BANGER_ROOT_HELPER_SOCKET;
    // Start from no policy for the test user (other users' policies, if any, are left alone).
    spawnSync(BANGER_BIN, ['system', 'uninstall', '--user', user.name], { encoding: 'utf8' });
    hadConfig = existsSync(HELPER_CONFIG);
  });
  after(() => {
    spawnSync(BANGER_BIN, ['system', 'uninstall', '--user', user.name], { encoding: 'utf8' });
    world.close();
  });

  async function helperCheck(): Promise<DoctorCheck> {
    const result = await world.run(['doctor', '--json']);
    const report = JSON.parse(result.stdout) as { checks: DoctorCheck[] };
    const check = report.checks.find((c) => c.id === 'root-helper');
    assert.ok(check !== undefined);
    return check;
  }

  test('doctor as the user fails without the helper, and its hint is the install command', async () => {
    const check = await helperCheck();
    assert.equal(check.status, 'fail');
    assert.match(check.hint ?? '', /^sudo \/.*\/bin\/banger system install$/);
  });

  test('install: root-owned code, the policy, the socket; doctor passes; uninstall removes them', async () => {
    const install = spawnSync(BANGER_BIN, ['system', 'install', '--user', user.name, '--json'], { encoding: 'utf8' });
    assert.equal(install.status, 0, install.stderr + install.stdout);
    const report = JSON.parse(install.stdout) as { socket: string; steps: string[] };
    assert.equal(report.socket, helperSocketPath(user.uid));
    for (const file of ['banger-root.cjs', 'build-info.json']) {
      const stat = statSync(`${INSTALL_DIR}/${file}`);
      assert.equal(stat.uid, 0, `${file} is root's`);
      assert.equal(stat.mode & 0o022, 0, `${file} is not writable by others`);
    }
    const config = JSON.parse(readFileSync(HELPER_CONFIG, 'utf8')) as { users: { uid: number; bridge: string; subnet: string }[] };
    assert.deepEqual(
      config.users.find((u) => u.uid === user.uid),
      { uid: user.uid, gid: user.gid, bridge: 'banger0', subnet: '172.30.0.0/24' },
    );
    assert.equal(statSync(report.socket).uid, user.uid);
    assert.equal(statSync('/dev/net/tun').mode & 0o666, 0o666, 'QEMU as the user can open its taps');

    const check = await helperCheck();
    assert.equal(check.status, 'pass', `${check.detail} ${check.hint ?? ''}`);
    assert.match(check.detail, /same build/);

    // Idempotent: a second install replaces, never duplicates.
    assert.equal(spawnSync(BANGER_BIN, ['system', 'install', '--user', user.name], { encoding: 'utf8' }).status, 0);
    const again = JSON.parse(readFileSync(HELPER_CONFIG, 'utf8')) as { users: { uid: number }[] };
    assert.equal(again.users.filter((u) => u.uid === user.uid).length, 1);

    // Only root may install.
    const asTheUser = spawnSync(asUser(user)[0] ?? 'setpriv', [...asUser(user).slice(1), BANGER_BIN, 'system', 'install'], {
      encoding: 'utf8',
      env: world.env,
    });
    assert.notEqual(asTheUser.status, 0);
    assert.match(asTheUser.stderr, /error\[ERR_NEEDS_ROOT\]: installing the root helper needs root\nhint: run it with sudo: sudo \/.*banger system install/);

    const uninstall = spawnSync(BANGER_BIN, ['system', 'uninstall', '--user', user.name], { encoding: 'utf8' });
    assert.equal(uninstall.status, 0, uninstall.stderr);
    if (!hadConfig) {
      assert.equal(existsSync(HELPER_CONFIG), false);
      assert.equal(existsSync(`${INSTALL_DIR}/banger-root.cjs`), false);
      assert.equal(existsSync(report.socket), false, 'the helper stopped');
    }
  });
});
