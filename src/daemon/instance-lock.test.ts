import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { after, describe, test } from 'node:test';

import { DAEMON_LOCK } from '../config/filenames.js';
import { BangerError } from '../rpc/errors.js';
import { InstanceLock } from './instance-lock.js';

/**
 * A process that takes the lock and reports on stdout (`acquired`, or
 * `error <code>`); it releases on a `release` line on stdin and exits when
 * stdin closes, so a failed test leaves no holder behind.
 */
const HOLDER = `
const [moduleUrl, runtimeDir, waitMs] = process.argv.slice(1);
const { InstanceLock } = await import(moduleUrl);
let lock;
try {
  lock = await InstanceLock.acquire(runtimeDir, Number(waitMs));
  console.log('acquired');
} catch (error) {
  console.log('error ' + (error.code ?? error.message));
  process.exit(0);
}
process.stdin.setEncoding('utf8');
process.stdin.on('data', async (text) => {
  if (text.includes('release')) {
    await lock.release();
    console.log('released');
  }
});
process.stdin.on('end', () => process.exit(0));
`;

const MODULE_URL = new URL('./instance-lock.js', import.meta.url).href;

interface Holder {
  child: ChildProcessByStdio<Writable, Readable, null>;
  /** The next line the holder prints. */
  next: () => Promise<string>;
}

function startHolder(runtimeDir: string, waitMs = 0): Holder {
  const child = spawn(process.execPath, ['--input-type=module', '-e', HOLDER, MODULE_URL, runtimeDir, String(waitMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    next: async () => {
      const line = await lines.next();
      if (line.done === true) throw new Error('holder exited without a word');
      return line.value;
    },
  };
}

async function stop(holder: Holder): Promise<void> {
  if (holder.child.exitCode !== null || holder.child.signalCode !== null) return;
  const exited = once(holder.child, 'exit');
  holder.child.kill('SIGKILL');
  await exited;
}

describe('InstanceLock', { timeout: 30_000 }, () => {
  const root = mkdtempSync(join(tmpdir(), 'banger-lock-'));
  const holders: Holder[] = [];
  after(async () => {
    await Promise.all(holders.map(stop));
    rmSync(root, { recursive: true, force: true });
  });
  let dirs = 0;
  const runtimeDir = (): string => mkdtempSync(join(root, `run${dirs++}-`));
  const holder = (dir: string, waitMs = 0): Holder => {
    const h = startHolder(dir, waitMs);
    holders.push(h);
    return h;
  };

  test('a second process is refused at once with ERR_DAEMON_ALREADY_RUNNING', async () => {
    const dir = runtimeDir();
    const first = holder(dir);
    assert.equal(await first.next(), 'acquired');
    const started = Date.now();
    assert.equal(await holder(dir).next(), 'error ERR_DAEMON_ALREADY_RUNNING');
    await assert.rejects(
      InstanceLock.acquire(dir),
      (e: unknown) => e instanceof BangerError && e.code === 'ERR_DAEMON_ALREADY_RUNNING' && e.hint?.includes('banger daemon status') === true,
    );
    assert.ok(Date.now() - started < 5_000, 'no busy wait');
  });

  test('the lock is free the instant its holder is SIGKILLed', async () => {
    const dir = runtimeDir();
    const first = holder(dir);
    assert.equal(await first.next(), 'acquired');
    await stop(first);
    const lock = await InstanceLock.acquire(dir);
    await lock.release();
  });

  test('acquire with waitMs takes the lock once the holder releases it', async () => {
    const dir = runtimeDir();
    const first = holder(dir);
    assert.equal(await first.next(), 'acquired');
    const second = holder(dir, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    first.child.stdin.write('release\n');
    assert.equal(await first.next(), 'released');
    assert.equal(await second.next(), 'acquired');
  });

  test('within one process too: a second acquire is refused, and release frees it', async () => {
    const dir = runtimeDir();
    const lock = await InstanceLock.acquire(dir);
    await assert.rejects(InstanceLock.acquire(dir, 250), (e: unknown) => e instanceof BangerError && e.code === 'ERR_DAEMON_ALREADY_RUNNING');
    // The refused attempts must not have dropped the held lock (closing a descriptor drops a process's record locks).
    assert.equal(await holder(dir).next(), 'error ERR_DAEMON_ALREADY_RUNNING');
    await lock.release();
    await lock.release();
    const again = await InstanceLock.acquire(dir);
    await again.release();
  });

  test('the lock file is 0600 in the runtime dir, and nothing else is left there', async () => {
    const dir = runtimeDir();
    const first = holder(dir);
    assert.equal(await first.next(), 'acquired');
    await stop(first);
    assert.deepEqual(readdirSync(dir), [DAEMON_LOCK]);
    assert.equal(statSync(join(dir, DAEMON_LOCK)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, DAEMON_LOCK)).size, 0);
  });
});
