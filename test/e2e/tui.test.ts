import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { shellJoin } from '../../src/guest/shell.js';
import type { VmInfo } from '../../src/rpc/methods.js';
import { BANGER_BIN, BangerWorld, userModeLabel, vmWorldOptions } from '../integration/harness.js';

/**
 * `banger tui` on a real terminal: tmux (a private server on a socket in the
 * world's dir) runs it in a 160x40 pane against a real daemon with a real VM.
 * The test reads the screen with capture-pane and types with send-keys.
 */

/** The variables that point banger at this world (the rest of the environment is the tmux server's, started with the world's). */
const WORLD_VARIABLES = ['HOME', 'XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_CACHE_HOME', 'XDG_RUNTIME_DIR', 'BANGER_ROOT_HELPER_SOCKET', 'PATH'];

describe(`banger tui under tmux${userModeLabel()}`, () => {
  let world: BangerWorld | undefined;
  let socket: string | undefined;
  const session = `banger-tui-${randomBytes(4).toString('hex')}`;

  const tmux = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
    if (world === undefined || socket === undefined) throw new Error('no world');
    return spawnSync('tmux', ['-S', socket, '-f', '/dev/null', ...args], { encoding: 'utf8', env: world.env, timeout: 30_000 });
  };
  const screen = (): string => tmux('capture-pane', '-p', '-t', session).stdout;
  /** Polls the screen until `check` holds; fails with the last screen. */
  const untilScreen = async (what: string, check: (screen: string) => boolean, timeoutMs = 60_000): Promise<string> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const current = screen();
      if (check(current)) return current;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last screen:\n${current}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  };
  /** Whether the pane's process has exited (remain-on-exit keeps the pane, and its last screen, to tell). */
  const pane = (): { dead: boolean } => ({ dead: tmux('list-panes', '-t', session, '-F', '#{pane_dead}').stdout.trim() === '1' });
  const keys = (...k: string[]): void => {
    const sent = tmux('send-keys', '-t', session, ...k);
    assert.equal(sent.status, 0, sent.stderr);
  };
  const theWorld = (): BangerWorld => {
    if (world === undefined) throw new Error('no world: before() failed');
    return world;
  };
  /** The screen line of the VM's row. */
  const row = (text: string): string => text.split('\n').find((line) => /^[> ] tuibox /.test(line)) ?? '';

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    socket = join(world.root, 'tmux.sock');
    const created = await world.json<VmInfo>(['vm', 'create', '--name', 'tuibox', '--vcpu', '1'], { timeoutMs: 900_000 });
    assert.equal(created.state, 'running');
  });
  after(() => {
    if (socket !== undefined) tmux('kill-server');
    world?.close();
  });

  test('without a terminal it says what to use instead and exits 2', async () => {
    const result = await theWorld().run(['tui']);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^error\[ERR_USAGE\]: banger tui needs a terminal\nhint: use `banger vm list` or `banger vm stats --watch`$/m);
  });

  test('the VM row follows a stop and a start made with its keys; ssh leaves and comes back; q quits and gives the terminal back', async () => {
    const w = theWorld();
    const variables = WORLD_VARIABLES.flatMap((name) => (w.env[name] === undefined ? [] : [`${name}=${w.env[name]}`]));
    // The shell around it records the TUI's exit status in a file: tmux's pane_dead_status is not always filled in.
    const statusFile = join(w.root, 'tui-exit-status');
    const command = shellJoin([
      'sh',
      '-c',
      `${shellJoin([...w.commandPrefix(), 'env', ...variables, BANGER_BIN, 'tui'])}; echo $? > ${shellJoin([statusFile])}`,
    ]);
    const started = tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '40', command, ';', 'set-option', '-t', session, 'remain-on-exit', 'on');
    assert.equal(started.status, 0, started.stderr);

    const s = await untilScreen('the VM running', (x) => /tuibox\s+running/.test(row(x)));
    assert.match(s, /NAME\s+STATE\s+IP\s+IMAGE\s+SPEC\s+WORKSPACE\s+UPTIME\s+CPU\s+MEM/);
    assert.match(row(s), /tuibox\s+running\s+10\.\d+\.\d+\.\d+\s+debian-bookworm\s+1 vcpu · \d+ MiB/);
    await untilScreen('its stats', (x) => /\d+%/.test(row(x)));

    keys('x');
    await untilScreen('the VM stopped', (x) => /tuibox\s+stopped/.test(row(x)), 120_000);
    assert.equal((await w.json<VmInfo>(['vm', 'show', 'tuibox'])).state, 'stopped', 'the daemon stopped it');
    await untilScreen('the status line', (x) => x.includes('stopped tuibox (stopped)'));
    // An action that fails says so with the daemon's error and hint.
    keys('Enter');
    const refused = await untilScreen('ssh refused', (x) => x.includes('error[ERR_VM_NOT_RUNNING]'));
    assert.match(refused, /error\[ERR_VM_NOT_RUNNING\]: VM tuibox is not running\nhint: start it with `banger vm start tuibox`/);

    keys('s');
    await untilScreen('the VM running again', (x) => /tuibox\s+running/.test(row(x)), 300_000);
    await untilScreen('the status line', (x) => x.includes('started tuibox (running)'), 300_000);

    // ssh: the TUI steps aside for the guest's shell and comes back when it exits.
    keys('Enter');
    await untilScreen('the TUI gone for ssh', (x) => !x.includes('NAME  '), 60_000);
    keys('-l', 'echo tui-ssh-$((6*7)) && exit');
    keys('Enter');
    await untilScreen('the TUI back after ssh', (x) => x.includes('ssh to tuibox ended') && /tuibox\s+running/.test(row(x)), 120_000);

    keys('q');
    await untilScreen('the TUI to exit and its status recorded', () => existsSync(statusFile), 30_000);
    assert.equal(readFileSync(statusFile, 'utf8'), '0\n', 'banger tui exited 0');
    await untilScreen('the pane to end', () => pane().dead, 30_000);
    const last = screen();
    assert.doesNotMatch(last, /NAME\s+STATE/, 'the alternate screen was left');
    assert.match(last, /^tui-ssh-42$/m, "the main screen shows what it showed before: the ssh session's output");
  });
});
