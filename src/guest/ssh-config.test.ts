import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import {
  BLOCK_END,
  BLOCK_START,
  includeInstalled,
  includeLine,
  installInclude,
  renderSshConfig,
  sshConfigWord,
  uninstallInclude,
  userSshConfigPath,
  writeSshConfigFile,
} from './ssh-config.js';

const root = mkdtempSync(join(tmpdir(), 'banger-sshcfg-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

let homes = 0;
/** A fresh temp HOME with banger's config dir inside (a space in it on purpose). */
function world(): { home: string; userConfig: string; bangerConfig: string } {
  const home = join(root, `home ${homes++}`);
  mkdirSync(home);
  return { home, userConfig: userSshConfigPath(home), bangerConfig: join(home, '.config', 'banger', 'ssh_config') };
}

/** What `ssh -G` resolves for `host` from `configFile` alone (-F: no ~/.ssh/config, no system config). */
function sshResolve(configFile: string, host: string): Map<string, string[]> {
  const result = spawnSync('ssh', ['-G', '-F', configFile, host], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  const options = new Map<string, string[]>();
  for (const line of result.stdout.split('\n')) {
    const space = line.indexOf(' ');
    if (space < 0) continue;
    const key = line.slice(0, space);
    options.set(key, [...(options.get(key) ?? []), line.slice(space + 1)]);
  }
  return options;
}

function sshOption(options: Map<string, string[]>, key: string): string | undefined {
  return options.get(key)?.[0];
}

const errSshConfig = (e: unknown): boolean => e instanceof BangerError && e.code === 'ERR_SSH_CONFIG';

function removeBlock(bytes: Buffer): Buffer {
  const text = bytes.toString('latin1');
  const start = text.indexOf(BLOCK_START);
  const endMarker = text.indexOf(BLOCK_END, start);
  assert.ok(start >= 0 && endMarker > start, 'the block is there');
  return Buffer.from(text.slice(0, start) + text.slice(endMarker + BLOCK_END.length + 1), 'latin1');
}

describe('renderSshConfig', { timeout: 30_000 }, () => {
  test('ssh resolves <name>.vm to its address with banger key, known_hosts and strict checking', () => {
    const dir = join(root, 'state dir', 'ssh');
    const file = join(root, 'render', 'ssh_config');
    writeSshConfigFile(
      file,
      renderSshConfig({
        keyPath: join(dir, 'id_ed25519'),
        knownHosts: join(dir, 'known_hosts'),
        hosts: [
          { name: 'zeta', ip: '10.0.0.9' },
          { name: 'box', ip: '10.0.0.2' },
        ],
      }),
    );
    const box = sshResolve(file, 'box.vm');
    assert.equal(sshOption(box, 'hostname'), '10.0.0.2');
    assert.equal(sshOption(box, 'user'), 'root');
    assert.deepEqual(box.get('identityfile'), [join(dir, 'id_ed25519')]);
    assert.equal(sshOption(box, 'identitiesonly'), 'yes');
    assert.equal(sshOption(box, 'userknownhostsfile'), join(dir, 'known_hosts'));
    assert.equal(sshOption(box, 'globalknownhostsfile'), '/dev/null');
    assert.equal(sshOption(box, 'stricthostkeychecking'), 'true');
    assert.equal(sshOption(box, 'loglevel'), 'ERROR');
    assert.equal(sshOption(sshResolve(file, 'zeta.vm'), 'hostname'), '10.0.0.9');
    // A VM that is not running gets banger's settings but no address (DNS may still know it).
    const stopped = sshResolve(file, 'stopped.vm');
    assert.equal(sshOption(stopped, 'hostname'), 'stopped.vm');
    assert.equal(sshOption(stopped, 'user'), 'root');
    // Other hosts are not touched.
    assert.notEqual(sshOption(sshResolve(file, 'example.com'), 'userknownhostsfile'), join(dir, 'known_hosts'));
  });

  test('paths with quotes, backslashes and % survive ssh_config quoting and token expansion', () => {
    const dir = join(root, 'we"ird\\ 100%', 'ssh');
    const file = join(root, 'render-weird', 'ssh_config');
    writeSshConfigFile(file, renderSshConfig({ keyPath: join(dir, 'id_ed25519'), knownHosts: join(dir, 'known_hosts'), hosts: [] }));
    const resolved = sshResolve(file, 'box.vm');
    assert.equal(sshOption(resolved, 'userknownhostsfile'), join(dir, 'known_hosts'));
    // ssh -G prints IdentityFile before expanding its % tokens: `%%` is what becomes `%`.
    assert.deepEqual(resolved.get('identityfile'), [join(dir, 'id_ed25519').replaceAll('%', '%%')]);
  });

  test('hosts come out sorted; a name or address that cannot be a host is refused', () => {
    const text = renderSshConfig({
      keyPath: '/k',
      knownHosts: '/h',
      hosts: [
        { name: 'b', ip: '10.0.0.3' },
        { name: 'a', ip: '10.0.0.2' },
      ],
    });
    assert.ok(text.indexOf('Host a.vm') < text.indexOf('Host b.vm'));
    assert.ok(text.indexOf('Host b.vm') < text.indexOf('Host *.vm'));
    assert.throws(() => renderSshConfig({ keyPath: '/k', knownHosts: '/h', hosts: [{ name: 'a b', ip: '10.0.0.2' }] }), errSshConfig);
    assert.throws(() => renderSshConfig({ keyPath: '/k', knownHosts: '/h', hosts: [{ name: '*', ip: '10.0.0.2' }] }), errSshConfig);
    assert.throws(() => renderSshConfig({ keyPath: '/k', knownHosts: '/h', hosts: [{ name: 'a', ip: 'evil\nHost *' }] }), errSshConfig);
  });

  test('sshConfigWord quotes only what needs it and refuses line breaks', () => {
    assert.equal(sshConfigWord('/home/u/.ssh/id'), '/home/u/.ssh/id');
    assert.equal(sshConfigWord('/a b'), '"/a b"');
    assert.equal(sshConfigWord('/a"b\\c'), '"/a\\"b\\\\c"');
    assert.equal(sshConfigWord('/a#b'), '"/a#b"');
    assert.throws(() => sshConfigWord('/a\nb'), errSshConfig);
  });

  test('writeSshConfigFile: 0600 in a 0700 dir, atomically, and only when the text changes', () => {
    const dir = join(root, 'xdg-config', 'banger');
    const file = join(dir, 'ssh_config');
    assert.deepEqual(writeSshConfigFile(file, 'one\n'), { changed: true });
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const inode = statSync(file).ino;
    assert.deepEqual(writeSshConfigFile(file, 'one\n'), { changed: false });
    assert.equal(statSync(file).ino, inode, 'not rewritten');
    assert.deepEqual(writeSshConfigFile(file, 'two\n'), { changed: true });
    assert.equal(readFileSync(file, 'utf8'), 'two\n');
    assert.notEqual(statSync(file).ino, inode, 'replaced by rename, never written in place');
    assert.deepEqual(readdirSync(dir), ['ssh_config'], 'no temp file left');
  });
});

describe('installInclude / uninstallInclude', { timeout: 30_000 }, () => {
  // Everything an edit could trip over: comments, an Include of the user's own, CRLF lines,
  // a tab, bytes that are not UTF-8, and no newline at the end.
  const tricky = Buffer.concat([
    Buffer.from('# my ssh config\r\nInclude ~/.ssh/config.d/*\r\n\r\nHost other\r\n\tHostName o.example\r\n  User alice\n# caf'),
    Buffer.from([0xe9, 0xff]),
    Buffer.from('\nHost *\n  ServerAliveInterval 30'),
  ]);

  test('the user bytes survive install exactly; the block comes first; ssh follows the Include', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'), { mode: 0o700 });
    writeFileSync(w.userConfig, tricky, { mode: 0o644 });
    writeSshConfigFile(w.bangerConfig, renderSshConfig({ keyPath: '/k', knownHosts: '/kh', hosts: [{ name: 'box', ip: '10.0.0.2' }] }));

    assert.deepEqual(installInclude(w.userConfig, w.bangerConfig), { changed: true });
    const installed = readFileSync(w.userConfig);
    assert.ok(installed.toString('latin1').startsWith(`${BLOCK_START}\n`), 'the block is at the very top');
    assert.ok(installed.includes(includeLine(w.bangerConfig)));
    assert.deepEqual(removeBlock(installed), tricky, 'every other byte is as it was');
    assert.equal(statSync(w.userConfig).mode & 0o777, 0o644, 'the mode is kept');

    const box = sshResolve(w.userConfig, 'box.vm');
    assert.equal(sshOption(box, 'hostname'), '10.0.0.2');
    assert.equal(sshOption(box, 'user'), 'root');
    // The user's own settings still apply: banger's Host block does not swallow the rest of the file.
    const other = sshResolve(w.userConfig, 'other');
    assert.equal(sshOption(other, 'hostname'), 'o.example');
    assert.equal(sshOption(other, 'user'), 'alice');
    assert.equal(sshOption(box, 'serveraliveinterval'), '30');
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), true);
  });

  test('a second install changes nothing, byte for byte', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    writeFileSync(w.userConfig, tricky);
    installInclude(w.userConfig, w.bangerConfig);
    const once = readFileSync(w.userConfig);
    const inode = statSync(w.userConfig).ino;
    assert.deepEqual(installInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.deepEqual(readFileSync(w.userConfig), once);
    assert.equal(statSync(w.userConfig).ino, inode, 'not even rewritten');
  });

  test('uninstall restores the original bytes exactly; again, it is a no-op', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    writeFileSync(w.userConfig, tricky);
    installInclude(w.userConfig, w.bangerConfig);
    assert.deepEqual(uninstallInclude(w.userConfig, w.bangerConfig), { changed: true });
    assert.deepEqual(readFileSync(w.userConfig), tricky);
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), false);
    assert.deepEqual(uninstallInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.deepEqual(readFileSync(w.userConfig), tricky);
    assert.deepEqual(readdirSync(join(w.home, '.ssh')), ['config'], 'no temp file left');
  });

  test('uninstall without a file or without a block touches nothing', () => {
    const w = world();
    assert.deepEqual(uninstallInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.equal(existsSync(join(w.home, '.ssh')), false);
    mkdirSync(join(w.home, '.ssh'));
    writeFileSync(w.userConfig, tricky);
    const inode = statSync(w.userConfig).ino;
    assert.deepEqual(uninstallInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.deepEqual(readFileSync(w.userConfig), tricky);
    assert.equal(statSync(w.userConfig).ino, inode);
  });

  test('install creates ~/.ssh at 0700 and config at 0600 when missing', () => {
    const w = world();
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), false);
    assert.deepEqual(installInclude(w.userConfig, w.bangerConfig), { changed: true });
    assert.equal(statSync(join(w.home, '.ssh')).mode & 0o777, 0o700);
    assert.equal(statSync(w.userConfig).mode & 0o777, 0o600);
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), true);
    uninstallInclude(w.userConfig, w.bangerConfig);
    assert.equal(readFileSync(w.userConfig, 'utf8'), '');
  });

  test('a block the user moved stays where it is; one naming an old path is updated in place', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    writeFileSync(w.userConfig, 'Host a\n  User x\n');
    installInclude(w.userConfig, w.bangerConfig);
    const [block = '', rest = ''] = readFileSync(w.userConfig, 'utf8').split(/(?<=<<< banger <<<\n)/);
    const moved = `# mine\n${block}${rest}`;
    writeFileSync(w.userConfig, moved);
    assert.deepEqual(installInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), true);

    const newPath = join(w.home, 'elsewhere', 'ssh_config');
    assert.equal(includeInstalled(w.userConfig, newPath), false);
    assert.deepEqual(installInclude(w.userConfig, newPath), { changed: true });
    const updated = readFileSync(w.userConfig, 'utf8');
    assert.ok(updated.startsWith('# mine\n# >>> banger >>>\n'));
    assert.ok(updated.includes(includeLine(newPath)) && !updated.includes(includeLine(w.bangerConfig)));
    uninstallInclude(w.userConfig, newPath);
    assert.equal(readFileSync(w.userConfig, 'utf8'), '# mine\nHost a\n  User x\n');
  });

  test('a symlinked config is edited at its target and stays a symlink; a dangling one is refused', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    mkdirSync(join(w.home, 'dotfiles'));
    const target = join(w.home, 'dotfiles', 'ssh_config');
    writeFileSync(target, tricky);
    symlinkSync('../dotfiles/ssh_config', w.userConfig);
    assert.deepEqual(installInclude(w.userConfig, w.bangerConfig), { changed: true });
    assert.ok(lstatSync(w.userConfig).isSymbolicLink());
    assert.equal(readlinkSync(w.userConfig), '../dotfiles/ssh_config');
    assert.deepEqual(removeBlock(readFileSync(target)), tricky);
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), true);
    uninstallInclude(w.userConfig, w.bangerConfig);
    assert.deepEqual(readFileSync(target), tricky);
    assert.deepEqual(readdirSync(join(w.home, 'dotfiles')), ['ssh_config'], 'no temp file left');

    rmSync(target);
    assert.throws(
      () => installInclude(w.userConfig, w.bangerConfig),
      (e: unknown) => errSshConfig(e) && e instanceof BangerError && e.message.includes('symlink'),
    );
    assert.deepEqual(uninstallInclude(w.userConfig, w.bangerConfig), { changed: false });
    assert.equal(includeInstalled(w.userConfig, w.bangerConfig), false);
  });

  test("the user's own Include of banger's file counts as installed, however it is spelled", () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    const relative = w.bangerConfig.slice(w.home.length + 1);
    for (const line of [
      `Include ${w.bangerConfig.replaceAll(' ', '\\ ')}`,
      `  include "${w.bangerConfig}" # mine`,
      `Include=~/${relative.replaceAll(' ', '\\ ')}`,
      `Include /elsewhere/x '../${relative}'`,
      includeLine(w.bangerConfig),
    ]) {
      writeFileSync(w.userConfig, `Host a\n${line}\n`);
      assert.equal(includeInstalled(w.userConfig, w.bangerConfig), true, line);
    }
    for (const line of [
      `# Include ${w.bangerConfig.replaceAll(' ', '\\ ')}`,
      `Include ${join(w.home, '.config', 'banger', '*')}`,
      `IdentityFile "${w.bangerConfig}"`,
    ]) {
      writeFileSync(w.userConfig, `${line}\n`);
      assert.equal(includeInstalled(w.userConfig, w.bangerConfig), false, line);
    }
  });

  test('a broken block (start marker without end) is refused, not guessed at', () => {
    const w = world();
    mkdirSync(join(w.home, '.ssh'));
    writeFileSync(w.userConfig, `${BLOCK_START}\nInclude /x\nHost a\n`);
    assert.throws(() => installInclude(w.userConfig, w.bangerConfig), errSshConfig);
    assert.throws(() => uninstallInclude(w.userConfig, w.bangerConfig), errSshConfig);
  });

  test('a non-ASCII path is written as UTF-8 and ssh finds the file through it', () => {
    const w = world();
    const bangerConfig = join(w.home, 'jörg [cfg]', 'ssh_config');
    writeSshConfigFile(bangerConfig, renderSshConfig({ keyPath: '/k', knownHosts: '/kh', hosts: [{ name: 'box', ip: '10.0.0.7' }] }));
    installInclude(w.userConfig, bangerConfig);
    assert.ok(readFileSync(w.userConfig).includes(Buffer.from('jörg', 'utf8')));
    assert.equal(sshOption(sshResolve(w.userConfig, 'box.vm'), 'hostname'), '10.0.0.7');
    assert.equal(includeInstalled(w.userConfig, bangerConfig), true);
  });

  test('a relative banger path is refused', () => {
    const w = world();
    assert.throws(() => installInclude(w.userConfig, 'ssh_config'), errSshConfig);
  });
});
