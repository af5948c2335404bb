import assert from 'node:assert/strict';
import { chmodSync, chownSync, cpSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { RpcClient } from '../../src/rpc/client.js';
import { BangerError } from '../../src/rpc/errors.js';
import { openStore } from '../../src/store/database.js';
import { BangerWorld, processAlive, REPO_ROOT, waitFor } from './harness.js';

/** These tests spawn the real bangerd against temporary XDG dirs. */

interface Status {
  running: boolean;
  pid?: number;
  buildId?: string;
  stale?: boolean;
}

async function status(world: BangerWorld): Promise<Status> {
  const result = await world.run(['daemon', 'status', '--json']);
  const parsed = JSON.parse(result.stdout) as Status;
  // Scripts test the status: 0 running, 3 not running.
  assert.equal(result.code, parsed.running ? 0 : 3, result.stderr);
  return parsed;
}

describe('daemon lifecycle', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('is not running in a fresh world and `daemon status` does not start it', async () => {
    assert.deepEqual((await status(world)).running, false);
    assert.deepEqual(world.daemonPids(), []);
  });

  test('auto-starts on the first CLI call that needs it', async () => {
    const result = await world.run(['debug', 'sleep', '10', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.ok((JSON.parse(result.stdout) as { sleptMs: number }).sleptMs >= 10);
    assert.match(result.stderr, /started bangerd \(pid \d+\)/);
    const s = await status(world);
    assert.equal(s.running, true);
    assert.equal(s.stale, false);
    assert.deepEqual(world.daemonPids(), [s.pid]);
  });

  test('runtime dir is 0700 and the socket 0600', () => {
    assert.equal(statSync(world.layout.runtimeDir).mode & 0o777, 0o700);
    const socket = lstatSync(world.layout.socketPath);
    assert.ok(socket.isSocket());
    assert.equal(socket.mode & 0o777, 0o600);
  });

  test('`daemon stop` stops it gracefully and removes the socket', async () => {
    const { pid } = await status(world);
    assert.ok(pid !== undefined);
    const result = await world.run(['daemon', 'stop']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`bangerd stopped \\(pid ${pid}\\)`));
    assert.equal(processAlive(pid), false);
    assert.throws(() => lstatSync(world.layout.socketPath), /ENOENT/);
    assert.equal((await status(world)).running, false);
    assert.ok(world.logLines().some((l) => l.pid === pid && l.msg === 'bangerd stopped'));
  });

  test('`daemon stop` lets an in-flight request finish', async () => {
    await world.run(['daemon', 'start']);
    const client = await RpcClient.connect(world.layout.socketPath);
    try {
      const slow = client.call('sleep', { ms: 1500 });
      await waitFor('the sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 1500));
      const stop = world.run(['daemon', 'stop']);
      assert.ok((await slow).sleptMs >= 1500);
      assert.equal((await stop).code, 0);
    } finally {
      client.close();
    }
  });
});

describe('signals and logs', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('`daemon logs -f` follows new lines until interrupted', async () => {
    assert.equal((await world.run(['daemon', 'start'])).code, 0);
    const follower = world.spawn(['daemon', 'logs', '-f', '-n', '0']);
    let stdout = '';
    follower.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => {
      follower.on('close', (code) => {
        resolve(code);
      });
    });
    // Keep asking until the follower has caught a request it did not see when it started.
    await waitFor('the follower to print a new request', async () => {
      await world.run(['debug', 'sleep', '4321']);
      return stdout.includes('debug.sleep sleeping ms=4321');
    });
    follower.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.ok(!stdout.includes('bangerd starting'), '-n 0 skipped the existing lines');
  });

  test('SIGTERM stops the daemon gracefully', async () => {
    const [pid] = world.daemonPids();
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGTERM');
    await waitFor('the daemon to exit', () => !processAlive(pid));
    assert.ok(world.logLines().some((l) => l.pid === pid && l.msg === 'bangerd shutting down' && l.reason === 'SIGTERM'));
    assert.ok(world.logLines().some((l) => l.pid === pid && l.msg === 'bangerd stopped'));
    assert.throws(() => lstatSync(world.layout.socketPath), /ENOENT/);
  });
});

describe('concurrent clients', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('five CLIs racing to auto-start share exactly one daemon', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => world.run(['debug', 'sleep', '300'])));
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const ready = world.daemonPids();
    assert.equal(ready.length, 1, `expected one daemon, log shows ${ready.length}`);
    const served = world.logLines().filter((l) => l.method === 'debug.sleep' && l.msg === 'request finished');
    assert.equal(served.length, 5);
    assert.ok(served.every((l) => l.pid === ready[0]));
  });

  test('requests on one daemon run concurrently, not one after another', async () => {
    const client = await RpcClient.connect(world.layout.socketPath);
    const other = await RpcClient.connect(world.layout.socketPath);
    try {
      const first = client.call('sleep', { ms: 2000 });
      await waitFor('the first sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 2000));
      // While the first is still sleeping, a second client gets answers and sees both in flight.
      const ping = await other.call('ping', {});
      assert.equal(ping.inFlight, 2);
      await first;
    } finally {
      client.close();
      other.close();
    }
  });
});

describe('cancellation and op ids', () => {
  let world: BangerWorld;
  before(async () => {
    world = new BangerWorld();
    assert.equal((await world.run(['daemon', 'start'])).code, 0);
  });
  after(() => {
    world.close();
  });

  test('a client that disconnects cancels its slow request', async () => {
    const client = await RpcClient.connect(world.layout.socketPath);
    const pending = client.call('sleep', { ms: 60_000 });
    pending.catch(() => undefined);
    await waitFor('the sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 60_000));
    const opId = world.logLines().find((l) => l.msg === 'sleeping' && l.ms === 60_000)?.op_id;
    client.close();
    await waitFor('the daemon to cancel the request', () =>
      world.logLines().some((l) => l.op_id === opId && l.msg === 'request cancelled' && l.reason === 'client disconnected'),
    );
    const observer = await RpcClient.connect(world.layout.socketPath);
    try {
      assert.equal((await observer.call('ping', {})).inFlight, 1, 'only the ping itself is in flight');
    } finally {
      observer.close();
    }
  });

  test('Ctrl-C in the CLI cancels the request on the daemon', async () => {
    const child = world.spawn(['debug', 'sleep', '45000']);
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitFor('the sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 45_000));
    const exited = new Promise<number | null>((resolve) => {
      child.on('close', (code) => {
        resolve(code);
      });
    });
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    assert.match(stderr, /ERR_CANCELLED/);
    const opId = world.logLines().find((l) => l.msg === 'sleeping' && l.ms === 45_000)?.op_id;
    await waitFor('the daemon to cancel the request', () => world.logLines().some((l) => l.op_id === opId && l.msg === 'request cancelled'));
  });

  test('every log line of a request carries its op_id, which the error response names', async () => {
    const client = await RpcClient.connect(world.layout.socketPath);
    try {
      await assert.rejects(client.call('sleep', { ms: -1 }), (error: unknown) => {
        assert.ok(error instanceof BangerError);
        assert.equal(error.code, 'ERR_INVALID_ARGUMENT');
        assert.match(error.opId ?? '', /^op_[0-9a-f]{12}$/);
        const lines = world.logLines().filter((l) => l.op_id === error.opId);
        assert.deepEqual(
          lines.map((l) => l.msg),
          ['request started', 'request failed'],
        );
        assert.ok(lines.every((l) => l.method === 'debug.sleep'));
        return true;
      });
      await client.call('sleep', { ms: 7 });
      const sleeping = world.logLines().find((l) => l.msg === 'sleeping' && l.ms === 7);
      assert.ok(sleeping !== undefined);
      const lines = world.logLines().filter((l) => l.op_id === sleeping.op_id);
      assert.deepEqual(
        lines.map((l) => l.msg),
        ['request started', 'sleeping', 'request finished'],
      );
    } finally {
      client.close();
    }
  });

  test('`daemon logs --op` shows just that request', async () => {
    const sleeping = world.logLines().find((l) => l.msg === 'sleeping' && l.ms === 7);
    const opId = sleeping?.op_id as string;
    const result = await world.run(['daemon', 'logs', '--op', opId]);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(lines.every((line) => line.includes(opId)));
    assert.match(lines[1] ?? '', /INFO .*debug\.sleep sleeping ms=7/);
  });
});

describe('stale daemon', () => {
  let world: BangerWorld;
  let staleRoot: string;
  before(() => {
    world = new BangerWorld();
    // A copy of this build with a different build id stands in for the daemon an older banger left running.
    staleRoot = mkdtempSync(join(REPO_ROOT, '.stale-build-'));
    cpSync(join(REPO_ROOT, 'dist'), join(staleRoot, 'dist'), { recursive: true });
    writeFileSync(join(staleRoot, 'dist', 'build-info.json'), JSON.stringify({ version: '0.0.0-old', buildId: 'stale0000000000' }));
    writeFileSync(join(staleRoot, 'package.json'), JSON.stringify({ type: 'module' }));
  });
  after(() => {
    world.close();
    rmSync(staleRoot, { recursive: true, force: true });
  });

  test('is replaced when its build id differs from the CLI', async () => {
    const staleDaemon = world.runDaemon(join(staleRoot, 'dist', 'src', 'daemon', 'main.js'));
    await waitFor('the stale daemon', () => world.daemonPids().length === 1);
    const [stalePid] = world.daemonPids();
    const before = await status(world);
    assert.equal(before.buildId, 'stale0000000000');
    assert.equal(before.stale, true);

    const result = await world.run(['debug', 'sleep', '1']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /restarting bangerd: it runs build stale0000000000/);
    assert.equal((await staleDaemon).code, 0, 'the stale daemon shut down cleanly');

    const afterStatus = await status(world);
    assert.equal(afterStatus.running, true);
    assert.equal(afterStatus.stale, false);
    assert.notEqual(afterStatus.pid, stalePid);
    assert.notEqual(afterStatus.buildId, 'stale0000000000');
  });
});

describe('runtime dir hardening', () => {
  test('a looser runtime dir is tightened to 0700', async () => {
    const world = new BangerWorld();
    try {
      mkdirSync(world.layout.runtimeDir, { recursive: true });
      chmodSync(world.layout.runtimeDir, 0o755);
      assert.equal((await world.run(['daemon', 'start'])).code, 0);
      assert.equal(statSync(world.layout.runtimeDir).mode & 0o777, 0o700);
    } finally {
      world.close();
    }
  });

  test('a runtime dir owned by someone else is refused by CLI and daemon', async () => {
    const world = new BangerWorld();
    try {
      mkdirSync(world.layout.runtimeDir, { recursive: true, mode: 0o700 });
      chownSync(world.layout.runtimeDir, 65534, 65534);
      const cli = await world.run(['debug', 'sleep', '1']);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /error\[ERR_RUNTIME_DIR_INSECURE\]: refusing to use runtime dir: .* is owned by uid 65534, not by you/);
      assert.match(cli.stderr, /hint: remove /);

      const daemon = await world.runDaemon();
      assert.equal(daemon.code, 1);
      const fatal = world.logLines().find((l) => l.level === 'fatal');
      assert.equal(fatal?.code, 'ERR_RUNTIME_DIR_INSECURE');
      assert.deepEqual(world.daemonPids(), []);
    } finally {
      world.close();
    }
  });

  test('a symlinked runtime dir is refused, and the daemon explains why it did not start', async () => {
    const world = new BangerWorld();
    try {
      const elsewhere = join(world.root, 'elsewhere');
      mkdirSync(elsewhere, { mode: 0o700 });
      mkdirSync(join(world.layout.runtimeDir, '..'), { recursive: true });
      symlinkSync(elsewhere, world.layout.runtimeDir);
      const daemon = await world.runDaemon();
      assert.equal(daemon.code, 1);
      assert.equal(world.logLines().find((l) => l.level === 'fatal')?.code, 'ERR_RUNTIME_DIR_INSECURE');
      const cli = await world.run(['debug', 'sleep', '1', '--json']);
      assert.equal(cli.code, 1);
      const parsed = JSON.parse(cli.stdout) as { error: { code: string; message: string } };
      assert.equal(parsed.error.code, 'ERR_RUNTIME_DIR_INSECURE');
      assert.match(parsed.error.message, /is a symlink/);
    } finally {
      world.close();
    }
  });

  test('a daemon that cannot start reports its own fatal error to the CLI', async () => {
    const world = new BangerWorld();
    try {
      mkdirSync(world.layout.configDir, { recursive: true });
      world.writeConfig('vmm = "bochs"\n');
      const cli = await world.run(['debug', 'sleep', '1']);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /error\[ERR_CONFIG_INVALID\]: bangerd failed to start: .*config\.toml/);
    } finally {
      world.close();
    }
  });

  test('a failure after config loading (here: reconcile reading a damaged VM row) is a fatal line the CLI reports', async () => {
    const world = new BangerWorld();
    try {
      assert.equal((await world.run(['vm', 'list'])).code, 0, 'a first daemon creates the store');
      assert.equal((await world.run(['daemon', 'stop'])).code, 0);
      const store = openStore(world.layout.storePath);
      const now = new Date().toISOString();
      store.db
        .prepare("INSERT INTO vms (id, name, state, slot, spec, created_at, updated_at) VALUES ('damaged', 'damaged', 'running', 1, '{not json', ?, ?)")
        .run(now, now);
      store.close();
      const cli = await world.run(['vm', 'list']);
      assert.equal(cli.code, 1);
      assert.match(cli.stderr, /bangerd failed to start/);
      const fatal = world.logLines().find((l) => l.level === 'fatal');
      assert.ok(fatal !== undefined, 'a fatal line in the daemon log');
      assert.equal(fatal.code, 'ERR_INTERNAL');
    } finally {
      world.close();
    }
  });
});
