import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { renderSshConfig, writeSshConfigFile } from '../../src/guest/ssh-config.js';
import { BangerWorld } from './harness.js';

interface Status {
  path: string;
  include: string;
  installed: boolean;
  changed?: boolean;
}

/** The real CLI against a temp HOME and XDG dirs: the user's ~/.ssh/config is edited only on request, and exactly. */
describe('banger ssh-config', { timeout: 60_000 }, () => {
  let world: BangerWorld;
  let home: string;
  let userConfig: string;
  const original = Buffer.from('# mine\r\nHost git\r\n  HostName git.example\n  User alice\nInclude conf.d/*\nHost *\n  ForwardAgent no');
  before(() => {
    world = new BangerWorld();
    home = world.env.HOME ?? '';
    userConfig = join(home, '.ssh', 'config');
  });
  after(() => {
    world.close();
  });

  test('without options it reports, creates nothing and starts no daemon', async () => {
    const status = await world.json<Status>(['ssh-config']);
    assert.equal(status.path, world.layout.sshConfig);
    assert.equal(status.path, join(world.env.XDG_CONFIG_HOME ?? '', 'banger', 'ssh_config'));
    assert.equal(status.include, `Include ${world.layout.sshConfig}`);
    assert.equal(status.installed, false);
    assert.equal('changed' in status, false);
    assert.equal(existsSync(join(home, '.ssh')), false, '~/.ssh untouched');
    assert.equal(existsSync(world.layout.runtimeDir), false, 'no daemon');
    const human = await world.run(['ssh-config']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /banger ssh-config --install/);
    assert.match(human.stdout, /banger ssh-config --uninstall/);
    assert.ok(human.stdout.includes(world.layout.sshConfig));
  });

  test('--install adds the block on top, keeps every byte of the rest, and ssh follows it', async () => {
    mkdirSync(join(home, '.ssh'), { recursive: true, mode: 0o700 });
    writeFileSync(userConfig, original, { mode: 0o600 });
    const installed = await world.json<Status>(['ssh-config', '--install']);
    assert.equal(installed.changed, true);
    assert.equal(installed.installed, true);
    const text = readFileSync(userConfig, 'latin1');
    assert.ok(text.startsWith('# >>> banger >>>\n'));
    const end = text.indexOf('# <<< banger <<<\n') + '# <<< banger <<<\n'.length;
    assert.deepEqual(Buffer.from(text.slice(end), 'latin1'), original);

    const again = await world.json<Status>(['ssh-config', '--install']);
    assert.equal(again.changed, false);
    assert.equal(readFileSync(userConfig, 'latin1'), text);

    // What the daemon will write: with it, plain ssh resolves <name>.vm through the user's config.
    writeSshConfigFile(
      world.layout.sshConfig,
      renderSshConfig({ keyPath: world.layout.sshKey, knownHosts: world.layout.knownHosts, hosts: [{ name: 'box', ip: '10.0.0.5' }] }),
    );
    const resolved = spawnSync('ssh', ['-G', '-F', userConfig, 'box.vm'], { encoding: 'utf8' });
    assert.equal(resolved.status, 0, resolved.stderr);
    assert.match(resolved.stdout, /^hostname 10\.0\.0\.5$/m);
    assert.match(resolved.stdout, /^user root$/m);
    assert.ok(resolved.stdout.includes(`\nuserknownhostsfile ${world.layout.knownHosts}\n`));
    assert.match(spawnSync('ssh', ['-G', '-F', userConfig, 'git'], { encoding: 'utf8' }).stdout, /^user alice$/m);
    assert.equal((await world.json<Status>(['ssh-config'])).installed, true);
  });

  test('--uninstall restores the file byte for byte; again, it changes nothing', async () => {
    const removed = await world.json<Status>(['ssh-config', '--uninstall']);
    assert.equal(removed.changed, true);
    assert.equal(removed.installed, false);
    assert.deepEqual(readFileSync(userConfig), original);
    const again = await world.run(['ssh-config', '--uninstall']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /nothing to remove/);
    assert.deepEqual(readFileSync(userConfig), original);
  });

  test('--install and --uninstall together are a usage error', async () => {
    const result = await world.run(['ssh-config', '--install', '--uninstall', '--json']);
    assert.equal(result.code, 2);
    assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'ERR_USAGE');
    assert.deepEqual(readFileSync(userConfig), original);
  });

  test('--help says ~/.ssh is left alone unless asked, and what install buys', async () => {
    const result = await world.run(['ssh-config', '--help']);
    assert.equal(result.code, 0);
    const help = result.stdout.replace(/\s+/g, ' ');
    assert.match(help, /never touches ~\/\.ssh otherwise/);
    assert.match(help, /ssh root@<name>\.vm/);
  });
});
