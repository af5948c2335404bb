import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { cleanup, render } from 'ink-testing-library';

import { BangerError } from '../rpc/errors.js';
import type { VmDefaultsInfo } from '../rpc/methods.js';
import { App } from './App.js';
import { FakeActions } from './fake-actions.js';
import { followEvents } from './follow-events.js';
import { TuiStore } from './model.js';
import { changed, deleted, sample, stats, vmInfo } from './test-fixtures.js';

const ENTER = '\r';
const ESCAPE = '\x1b';
const DOWN = '\x1b[B';
const TAB = '\t';
const BACKSPACE = '\x7f';

afterEach(() => {
  cleanup();
});

/** Waits (under a deadline) for the screen to satisfy `check`; fails with the last frame. */
async function until(what: string, frame: () => string | undefined, check: (screen: string) => boolean): Promise<string> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const screen = frame() ?? '';
    if (check(screen)) return screen;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last screen:\n${screen}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Waits until `count` calls of `action` were made; fails with the calls made so far. */
async function untilCalled(fake: FakeActions, action: Parameters<FakeActions['callsOf']>[0], count = 1): Promise<void> {
  const deadline = Date.now() + 5000;
  while (fake.callsOf(action).length < count) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} ${action} call(s); calls: ${fake.calls.map((c) => c.action).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Renders the app wired as runTui wires it: the fake's event stream feeds the store. */
function start(options: { logRefreshMs?: number } = {}) {
  const fake = new FakeActions();
  const store = new TuiStore();
  const stream = new AbortController();
  void followEvents(fake.actions, store, stream.signal);
  const app = render(<App store={store} actions={fake.actions} {...options} />);
  /** Types keys, one write each (as a terminal sends them), letting ink take each in turn. */
  const press = async (...keys: string[]): Promise<void> => {
    for (const key of keys) {
      await new Promise((resolve) => setImmediate(resolve));
      app.stdin.write(key);
    }
    await new Promise((resolve) => setImmediate(resolve));
  };
  const screen = (what: string, check: (s: string) => boolean): Promise<string> => until(what, app.lastFrame, check);
  return { fake, store, app, press, screen, stream };
}

const box = vmInfo('box', { createdAt: '2025-01-01T00:00:01.000Z', ip: '10.0.0.2' });
const web = vmInfo('web', { createdAt: '2025-01-01T00:00:02.000Z', ip: '10.0.0.3', state: 'stopped', pid: null, accel: null });

/** The screen line of a VM's row. */
const rowOf = (screen: string, name: string): string => screen.split('\n').find((line) => line.slice(2).startsWith(`${name} `)) ?? '';

test('the list shows rows from the event stream and follows vm.changed, vm.stats and vm.deleted', async () => {
  const { fake, screen } = start();
  await screen('the empty table', (s) => s.includes('no VMs yet'));
  fake.emit(changed(box));
  fake.emit(changed(web));
  let s = await screen('two rows', (x) => rowOf(x, 'web') !== '');
  assert.match(s, /NAME\s+STATE\s+IP\s+IMAGE\s+SPEC\s+WORKSPACE\s+UPTIME\s+CPU\s+MEM/);
  assert.match(rowOf(s, 'box'), /box\s+running\s+10\.0\.0\.2\s+debian-bookworm\s+2 vcpu · 1024 MiB\s+-\s+-\s+-\s+-/);
  assert.match(rowOf(s, 'web'), /web\s+stopped\s+10\.0\.0\.3/);
  assert.match(s, /banger · 2 VMs/);

  fake.emit(stats(box, sample({ cpuPercent: 37, usedMiB: 300, totalMiB: 1024, uptimeSeconds: 3700 })));
  s = await screen('the stats of box', (x) => rowOf(x, 'box').includes('37%'));
  // The 100-column test terminal cuts the row in its MEM cell (format.ts's tests check the whole cell).
  assert.match(rowOf(s, 'box'), /1h1m\s+37%\s+300\.0 MiB/);

  fake.emit(changed({ ...web, state: 'running' }));
  await screen('web running', (x) => /web\s+running/.test(rowOf(x, 'web')));

  fake.emit(deleted(box));
  s = await screen('box gone', (x) => rowOf(x, 'box') === '');
  assert.match(s, /banger · 1 VM\b/);
});

test('a failed event stream is said on screen, with its hint', async () => {
  const fake = new FakeActions();
  fake.actions.subscribe = () => Promise.reject(new BangerError('ERR_INTERNAL', 'not built yet', { hint: 'upgrade bangerd' }));
  const store = new TuiStore();
  await followEvents(fake.actions, store, new AbortController().signal);
  const app = render(<App store={store} actions={fake.actions} />);
  const s = await until('the lost stream', app.lastFrame, (x) => x.includes('event stream lost'));
  assert.match(s, /error\[ERR_INTERNAL\]: not built yet/);
  assert.match(s, /hint: upgrade bangerd/);
});

test('s, x and r start, stop and restart the selected VM; the status line says how it went, with the hint of an error', async () => {
  const { fake, press, screen } = start();
  fake.emit(changed(box));
  fake.emit(changed(web));
  await screen('rows', (s) => rowOf(s, 'web') !== '');
  await press(DOWN, 's');
  await untilCalled(fake, 'start');
  assert.deepEqual(fake.callsOf('start')[0]?.args, ['web']);
  await screen('busy status', (s) => s.includes('starting web'));
  fake.callsOf('start')[0]?.resolve({ ...web, state: 'running' });
  await screen('done status', (s) => s.includes('started web (running)'));

  await press('k', 'x');
  await untilCalled(fake, 'stop');
  assert.deepEqual(fake.callsOf('stop')[0]?.args, ['box']);
  fake.callsOf('stop')[0]?.reject(new BangerError('ERR_VM_NOT_RUNNING', 'VM box is not running', { hint: 'start it with `banger vm start box`' }));
  const s = await screen('the error', (x) => x.includes('ERR_VM_NOT_RUNNING'));
  assert.match(s, /error\[ERR_VM_NOT_RUNNING\]: VM box is not running/);
  assert.match(s, /hint: start it with `banger vm start box`/);

  await press('r');
  await untilCalled(fake, 'restart');
  assert.deepEqual(fake.callsOf('restart')[0]?.args, ['box']);
});

test('d asks first: n keeps the VM, y deletes it', async () => {
  const { fake, press, screen } = start();
  fake.emit(changed(box));
  await screen('a row', (s) => rowOf(s, 'box') !== '');
  await press('d');
  await screen('the question', (s) => s.includes('delete VM box and its disks? (y/n)'));
  await press('n');
  await screen('kept', (s) => s.includes('kept box') && !s.includes('(y/n)'));
  assert.equal(fake.callsOf('delete').length, 0, 'n deletes nothing');

  await press('d');
  await screen('the question again', (s) => s.includes('(y/n)'));
  await press('x'); // any other key is no answer
  await press('y');
  await untilCalled(fake, 'delete');
  assert.deepEqual(fake.callsOf('delete')[0]?.args, ['box']);
  assert.equal(fake.callsOf('stop').length, 0, 'x while asked did not stop the VM');
  fake.callsOf('delete')[0]?.resolve(box);
  await screen('deleted', (s) => s.includes('deleted box'));
});

test('enter opens ssh to the selected VM; its exit status is reported', async () => {
  const { fake, press, screen } = start();
  fake.emit(changed(box));
  await screen('a row', (s) => rowOf(s, 'box') !== '');
  await press(ENTER);
  await untilCalled(fake, 'ssh');
  assert.deepEqual(fake.callsOf('ssh')[0]?.args, ['box']);
  fake.callsOf('ssh')[0]?.resolve(255);
  await screen('ssh status', (s) => s.includes('ssh to box exited with status 255'));
});

test('l opens the console pane, which re-reads vm.logs while open and stops when closed', async () => {
  const { fake, press, screen } = start({ logRefreshMs: 10 });
  let reads = 0;
  fake.answers.logs = (vm, lines) => {
    reads++;
    return Promise.resolve([`${vm} console read ${reads} (${lines} lines)`, '\x1b[1mbold\x1b[0m line\r']);
  };
  fake.emit(changed(box));
  await screen('a row', (s) => rowOf(s, 'box') !== '');
  await press('l');
  let s = await screen('the console', (x) => x.includes('console of box') && x.includes('box console read'));
  assert.match(s, /^.*bold line\s*│?$/m, 'escape sequences and carriage returns are dropped');
  await screen('a later read', (x) => /box console read ([3-9]|\d\d)/.test(x));
  await press(ESCAPE);
  s = await screen('the pane closed', (x) => !x.includes('console of box'));
  const closedAt = reads;
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(reads <= closedAt + 1, `no reading after the pane closed (${reads - closedAt} more)`);
  assert.match(s, /s start/, 'the list keys are back');
});

test('e prompts for a path (./<vm>.patch by default) and exports there', async () => {
  const { fake, press, screen } = start();
  fake.emit(changed(box));
  await screen('a row', (s) => rowOf(s, 'box') !== '');
  await press('e');
  await screen('the prompt', (s) => s.includes('export the workspace patch of box to: ./box.patch'));
  await press(ENTER);
  await untilCalled(fake, 'exportPatch');
  assert.deepEqual(fake.callsOf('exportPatch')[0]?.args, ['box', './box.patch']);
  fake.callsOf('exportPatch')[0]?.resolve({ path: '/work/box.patch', files: 3, bytes: 2048 });
  await screen('the summary', (s) => s.includes('wrote 3 changed files (2.0 KiB) of box to /work/box.patch'));

  await press('e');
  await screen('the prompt again', (s) => s.includes('export the workspace patch of box to: ./box.patch'));
  await press(...Array<string>('./box.patch'.length).fill(BACKSPACE), 'out.diff', ENTER);
  await untilCalled(fake, 'exportPatch', 2);
  assert.deepEqual(fake.callsOf('exportPatch')[1]?.args, ['box', 'out.diff']);
  fake.callsOf('exportPatch')[1]?.reject(new BangerError('ERR_NO_WORKSPACE', 'VM box has no workspace', { hint: 'banger vm workspace prepare box' }));
  const s = await screen('the error', (x) => x.includes('ERR_NO_WORKSPACE'));
  assert.match(s, /hint: banger vm workspace prepare box/);
});

const defaults: VmDefaultsInfo = {
  vcpu: 2,
  memoryMiB: 2048,
  diskSizeBytes: 8 * 1024 ** 3,
  init: 'minimal',
  nat: false,
  network: 'isolated',
  sources: { vcpu: 'auto', memoryMiB: 'config', diskSizeBytes: 'builtin' },
};

test('n opens the create form: defaults as placeholders, only the filled fields sent, progress stages shown', async () => {
  const { fake, press, screen } = start();
  fake.answers.defaults = () => Promise.resolve(defaults);
  await press('n');
  let s = await screen('the form with defaults', (x) => x.includes('2 (auto)'));
  assert.match(s, /memory\s+2048 MiB \(config\)/);
  assert.match(s, /name\s+generated/);
  // Name and vcpu, image and memory left blank; sent together, as a paste or tmux send-keys delivers them (one input event).
  await press(`dev${TAB}${TAB}3${ENTER}`);
  await untilCalled(fake, 'create');
  assert.deepEqual(fake.callsOf('create')[0]?.args, [{ name: 'dev', vcpu: 3 }]);
  fake.progress?.({ token: 't', stage: 'image', detail: 'pulling image debian-bookworm', current: 512, total: 1024 });
  await screen('the first stage', (x) => x.includes('… pulling image debian-bookworm (512 B / 1.0 KiB, 50%)'));
  fake.progress?.({ token: 't', stage: 'boot', detail: 'booting dev' });
  s = await screen('the second stage', (x) => x.includes('… booting dev'));
  assert.match(s, /✓ pulling image debian-bookworm/);
  fake.callsOf('create')[0]?.resolve(vmInfo('dev', { ip: '10.0.0.7' }));
  s = await screen('back to the list', (x) => x.includes('created dev (running, 10.0.0.7)'));
  assert.doesNotMatch(s, /new VM/);
});

test('the create form: memory takes units; a bad field is said before any call; a daemon error stays on the form with its hint; esc cancels', async () => {
  const { fake, press, screen } = start();
  fake.answers.defaults = () => Promise.reject(new BangerError('ERR_DAEMON_UNREACHABLE', 'gone'));
  await press('n');
  await screen('the form', (s) => s.includes('new VM'));
  await press(TAB, TAB, '0', ENTER);
  await screen('the vcpu problem', (x) => x.includes('vcpu must be'));
  assert.equal(fake.callsOf('create').length, 0);
  await press(BACKSPACE, '1', TAB, '2G', TAB, 'Bad_Name', ENTER);
  let s = await screen('the name problem', (x) => x.includes('is not a valid VM name'));
  assert.match(s, /hint: use 1-63 lowercase letters/);
  await press(...Array<string>(8).fill(BACKSPACE), TAB, 'nosuchimage', ENTER);
  await untilCalled(fake, 'create');
  assert.deepEqual(fake.callsOf('create')[0]?.args, [{ image: 'nosuchimage', vcpu: 1, memoryMiB: 2048 }]);
  fake.progress?.({ token: 't', stage: 'image', detail: 'looking up image nosuchimage' });
  fake.callsOf('create')[0]?.reject(new BangerError('ERR_NOT_FOUND', 'no image nosuchimage', { hint: 'see `banger image catalog`' }));
  s = await screen('the daemon error', (x) => x.includes('ERR_NOT_FOUND'));
  assert.match(s, /✗ looking up image nosuchimage/);
  assert.match(s, /hint: see `banger image catalog`/);
  assert.match(s, /new VM/, 'still on the form');
  await press(ESCAPE);
  await screen('the list', (x) => !x.includes('new VM') && x.includes('s start'));
});

test('q quits (and is typed, not quitting, inside a field)', async () => {
  const { press, screen, app } = start();
  await press('n');
  await screen('the form', (s) => s.includes('new VM'));
  await press('q');
  await screen('q typed in the name', (s) => /name\s+q/.test(s));
  await press(ESCAPE);
  await screen('the list', (s) => s.includes('q quit') && !s.includes('new VM'));
  await press('q');
  // ink's exit unmounts the app: later keys change nothing.
  const before = app.frames.length;
  await press('n');
  assert.equal(app.frames.length, before);
});
