import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import type { CommandUnknownOpts } from '@commander-js/extra-typings';

import { buildProgram } from '../../src/cli/program.js';
import { BangerWorld, REPO_ROOT } from './harness.js';

describe('help and usage', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  // Every visible command in the real command tree, so a new command cannot ship without help.
  const commands: { path: string[]; description: string }[] = [];
  const walk = (command: CommandUnknownOpts, path: string[]): void => {
    commands.push({ path, description: command.description() });
    for (const sub of command.createHelp().visibleCommands(command)) {
      if (sub.name() !== 'help') walk(sub, [...path, sub.name()]);
    }
  };
  walk(buildProgram(), []);

  test('the command tree has the expected commands', () => {
    const paths = commands.map((c) => c.path.join(' '));
    for (const expected of ['daemon start', 'daemon stop', 'daemon status', 'daemon logs', 'doctor', 'version', 'completion']) {
      assert.ok(paths.includes(expected), expected);
    }
  });

  for (const { path, description } of commands) {
    test(`banger ${path.join(' ')} --help describes itself`, async () => {
      assert.ok(description.length > 10, 'has a real description');
      const result = await world.run([...path, '--help']);
      assert.equal(result.code, 0, result.stderr);
      // An alias shows after a bar: "Usage: banger vm list|ps".
      assert.match(result.stdout, new RegExp(`^Usage: banger${path.length > 0 ? ' ' + path.join(' ') : ''}(\\|\\w+)?( |$)`, 'm'));
      assert.ok(result.stdout.replace(/\s+/g, ' ').includes(description.replace(/\s+/g, ' ')), 'help shows the description');
    });
  }

  test('top-level help lists the commands and the exit statuses', async () => {
    const result = await world.run(['--help']);
    for (const name of ['daemon', 'doctor', 'version', 'completion']) assert.match(result.stdout, new RegExp(`^  ${name}\\b`, 'm'));
    assert.match(result.stdout, /2 usage error/);
  });

  test('a usage error exits 2, a failure exits 1', async () => {
    const unknown = await world.run(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
    const badShell = await world.run(['completion', 'tcsh']);
    assert.equal(badShell.code, 2);
    const badOption = await world.run(['daemon', 'logs', '-n', 'lots']);
    assert.equal(badOption.code, 2);
    assert.match(badOption.stderr, /expected a non-negative integer, got "lots"/);
  });

  test('--json usage errors are structured too', async () => {
    const result = await world.run(['frobnicate', '--json']);
    assert.equal(result.code, 2);
    assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'ERR_USAGE');
  });

  test('version prints client build and daemon state', async () => {
    const result = await world.run(['version', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const parsed = JSON.parse(result.stdout) as { client: { version: string; buildId: string }; daemon: unknown };
    assert.match(parsed.client.buildId, /^[0-9a-f]{16}$/);
    assert.equal(parsed.daemon, null);
  });
});

describe('shell completion', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('the bash script completes `banger da` to `daemon`', async () => {
    const script = await world.run(['completion', 'bash']);
    assert.equal(script.code, 0, script.stderr);
    const scriptPath = join(world.root, 'banger.bash');
    writeFileSync(scriptPath, script.stdout);
    const probe = (words: string): string => {
      const result = spawnSync(
        'bash',
        ['-c', `source ${scriptPath}; COMP_WORDS=(${words}); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _banger_complete; printf '%s\\n' "\${COMPREPLY[@]}"`],
        { env: { ...world.env, PATH: `${join(REPO_ROOT, 'bin')}:${world.env.PATH ?? ''}` }, encoding: 'utf8' },
      );
      assert.equal(result.status, 0, result.stderr);
      return result.stdout.trim();
    };
    assert.equal(probe('banger da'), 'daemon');
    assert.deepEqual(probe("banger daemon ''").split('\n').sort(), ['logs', 'start', 'status', 'stop']);
    assert.deepEqual(probe('banger daemon logs --fo'), '--follow');
  });

  test('zsh and fish scripts are produced', async () => {
    const zsh = await world.run(['completion', 'zsh']);
    assert.match(zsh.stdout, /^#compdef banger/);
    assert.match(zsh.stdout, /banger __complete/);
    const fish = await world.run(['completion', 'fish']);
    assert.match(fish.stdout, /complete -c banger/);
    if (existsSync('/usr/bin/zsh')) {
      const check = spawnSync('zsh', ['-n', '-c', zsh.stdout], { encoding: 'utf8' });
      assert.equal(check.status, 0, check.stderr);
    }
    const bashCheck = spawnSync('bash', ['-n'], { input: (await world.run(['completion', 'bash'])).stdout, encoding: 'utf8' });
    assert.equal(bashCheck.status, 0, bashCheck.stderr);
  });

  test('a reader that goes away ends the CLI quietly (SIGPIPE status), wherever bin/banger is linked from', async () => {
    const link = join(world.root, 'linked-banger');
    symlinkSync(join(REPO_ROOT, 'bin', 'banger'), link);
    const child = spawn(link, ['vm', 'run', '--help'], { env: world.env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // gone before the CLI writes its help
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const [code] = (await once(child, 'close')) as [number | null];
    assert.equal(code, 141, `exits as tools killed by SIGPIPE do: ${stderr}`);
    assert.doesNotMatch(stderr, /EPIPE|\bat /, 'no stack trace');
    const linked = spawnSync(link, ['--version'], { env: world.env, encoding: 'utf8' });
    assert.match(linked.stdout, /^banger \d+\.\d+\.\d+ \(build [0-9a-f]{16}\)$/m, 'a symlinked bin/banger finds its package');
  });
});
