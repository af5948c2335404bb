import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { BangerError, connect, ERROR_CODES, type BangerClient, type ProgressEvent } from '../../src/sdk/index.js';
import { BangerWorld, REPO_ROOT, waitFor } from './harness.js';

/**
 * The SDK (src/sdk) against the real bangerd, without VMs: connecting and
 * auto-start, typed errors, the generic call, progress, cancellation, the
 * stream methods' failures, events, and the package's type declarations.
 */

/** Awaits a promise that must reject with a BangerError of `code`; returns the error. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<BangerError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof BangerError, `expected a BangerError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}, but it resolved`);
}

/** The op id the daemon logged for the request whose log line matches. */
function opIdOf(world: BangerWorld, match: (line: Record<string, unknown>) => boolean): string | undefined {
  const line = world.logLines().find(match);
  return typeof line?.op_id === 'string' ? line.op_id : undefined;
}

describe('SDK connect', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('autoStart: false with no daemon is ERR_DAEMON_UNREACHABLE, and starts nothing', async () => {
    const error = await rejectsWith(connect({ env: world.env, autoStart: false }), 'ERR_DAEMON_UNREACHABLE');
    assert.match(error.hint ?? '', /banger daemon start/);
    assert.deepEqual(world.daemonPids(), []);
  });

  test('a socketPath nobody listens on is ERR_DAEMON_UNREACHABLE', async () => {
    await rejectsWith(connect({ socketPath: join(world.root, 'no.sock') }), 'ERR_DAEMON_UNREACHABLE');
  });

  test('connect starts the daemon of the environment it is given, and says so', async () => {
    const notices: string[] = [];
    const client = await connect({ env: world.env, onNotice: (message) => notices.push(message) });
    try {
      assert.deepEqual(world.daemonPids(), [client.daemon.pid]);
      assert.equal(client.daemon.socketPath, world.layout.socketPath);
      assert.deepEqual(notices, [`started bangerd (pid ${client.daemon.pid})`]);
    } finally {
      client.close();
    }
  });

  test('a second connect reuses the running daemon; an explicit socketPath reaches it too', async () => {
    const [pid] = world.daemonPids();
    const again = await connect({ env: world.env, autoStart: false });
    const direct = await connect({ socketPath: world.layout.socketPath });
    try {
      assert.equal(again.daemon.pid, pid);
      assert.equal((await direct.call('ping')).pid, pid);
      assert.deepEqual(world.daemonPids(), [pid]);
    } finally {
      again.close();
      direct.close();
    }
  });
});

describe('SDK calls', () => {
  let world: BangerWorld;
  let client: BangerClient;
  before(async () => {
    world = new BangerWorld({ sharedDownloads: true });
    client = await connect({ env: world.env });
  });
  after(() => {
    client.close();
    world.close();
  });

  test('a missing VM is a typed ERR_NOT_FOUND with a hint and the op id of the request', async () => {
    const error = await rejectsWith(client.vm.show('nosuchvm'), 'ERR_NOT_FOUND');
    assert.match(error.message, /nosuchvm/);
    assert.ok((error.hint ?? '').length > 0, 'it has a hint');
    assert.match(error.opId ?? '', /^op_[0-9a-f]{12}$/);
    assert.ok(
      world.logLines().some((l) => l.op_id === error.opId && l.method === 'vm.show'),
      'the op id is the one the daemon logged',
    );
    assert.ok(ERROR_CODES.includes(error.code));
    await rejectsWith(client.image.show('nosuchimage'), 'ERR_NOT_FOUND');
    await rejectsWith(client.kernel.delete('nosuchkernel'), 'ERR_NOT_FOUND');
  });

  test('the generic call reaches any method with typed params; bad params are ERR_INVALID_ARGUMENT naming the param', async () => {
    assert.equal((await client.call('ping')).pid, client.daemon.pid);
    assert.ok((await client.call('sleep', { ms: 5 })).sleptMs >= 5);
    assert.deepEqual(await client.call('vmList'), { vms: [] });
    const error = await rejectsWith(client.call('sleep', { ms: -1 }), 'ERR_INVALID_ARGUMENT');
    assert.match(error.message, /ms/);
  });

  test('the namespaces unwrap list results; vm.defaults needs no config', async () => {
    assert.deepEqual(await client.vm.list(), []);
    assert.deepEqual(await client.image.list(), []);
    assert.ok((await client.image.catalog()).some((entry) => entry.name === 'debian-bookworm'));
    const defaults = await client.vm.defaults();
    assert.ok(defaults.vcpu >= 1 && defaults.memoryMiB > 0 && defaults.diskSizeBytes > 0);
    assert.ok(['config', 'auto', 'builtin'].includes(defaults.sources.vcpu));
  });

  test('a pull reports its stages to onProgress while it runs, then the kernel is listed', async () => {
    const events: ProgressEvent[] = [];
    const { kernel, pulled } = await client.kernel.pull({ name: 'debian-bookworm-cloud', onProgress: (event) => events.push(event) });
    assert.equal(pulled, true);
    const stages = events.map((e) => e.stage);
    for (const stage of ['resolve', 'download', 'unpack', 'vmlinux', 'initramfs']) assert.ok(stages.includes(stage), `stage ${stage} in ${stages.join(' ')}`);
    assert.ok(events.every((e) => typeof e.detail === 'string' && e.detail.length > 0));
    assert.deepEqual(
      (await client.kernel.list()).map((k) => k.id),
      [kernel.id],
    );
    assert.equal((await client.kernel.show('debian-bookworm-cloud')).id, kernel.id);
    assert.equal((await client.kernel.pull('debian-bookworm-cloud')).pulled, false, 'a second pull finds it present');
  });

  test('aborting a call rejects with ERR_CANCELLED and the daemon cancels its work', async () => {
    const controller = new AbortController();
    const pending = client.call('sleep', { ms: 60_000 }, { signal: controller.signal });
    await waitFor('the sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 60_000));
    controller.abort();
    await rejectsWith(pending, 'ERR_CANCELLED');
    const opId = opIdOf(world, (l) => l.msg === 'sleeping' && l.ms === 60_000);
    await waitFor('the daemon to cancel the request', () => world.logLines().some((l) => l.op_id === opId && l.msg === 'request cancelled'));
    assert.equal((await client.call('ping')).inFlight, 1, 'nothing is left in flight');
  });

  test('a signal aborted before the call is ERR_CANCELLED too, and nothing stays in flight', async () => {
    await rejectsWith(client.call('sleep', { ms: 50_000 }, { signal: AbortSignal.abort() }), 'ERR_CANCELLED');
    await waitFor('nothing in flight but the ping', async () => (await client.call('ping')).inFlight === 1);
  });

  test('exec and export on a missing VM reject with ERR_NOT_FOUND, end their output, and leave no stream open', async () => {
    const command = client.vm.exec('nosuchvm', ['cat'], { stdin: 'hello' });
    const chunks: Buffer[] = [];
    for await (const chunk of command.stdout) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).length, 0);
    await rejectsWith(command.result, 'ERR_NOT_FOUND');
    assert.equal(command.exitCode, null);
    await rejectsWith(client.vm.run('nosuchvm', ['true']), 'ERR_NOT_FOUND');
    await rejectsWith(client.workspace.export('nosuchvm'), 'ERR_NOT_FOUND');
    await rejectsWith(client.workspace.prepare('nosuchvm', { sourcePath: REPO_ROOT }), 'ERR_NOT_FOUND');
    assert.equal((await client.call('ping')).inFlight, 1);
  });

  test('kill() refuses a signal the guest cannot be sent', async () => {
    const command = client.vm.exec('nosuchvm', ['true'], { stdin: '' });
    assert.throws(
      () => {
        // @ts-expect-error not a signal banger forwards
        command.kill('SIGSEGV');
      },
      (error: unknown) => error instanceof BangerError && error.code === 'ERR_INVALID_ARGUMENT',
    );
    await rejectsWith(command.result, 'ERR_NOT_FOUND');
  });

  test('events: the iterable ends on abort, without an error, and the daemon ends the subscription', async () => {
    const controller = new AbortController();
    const seen: string[] = [];
    const iteration = (async () => {
      for await (const event of client.events({ signal: controller.signal })) seen.push(event.kind);
    })();
    iteration.catch(() => undefined); // awaited below; a refused subscription fails the test there
    await waitFor('the subscription to start', () => world.logLines().some((l) => l.method === 'daemon.events' && l.msg === 'request started'));
    controller.abort();
    await iteration;
    assert.deepEqual(seen, [], 'no VMs, so no events');
    const opId = opIdOf(world, (l) => l.method === 'daemon.events' && l.msg === 'request started');
    await waitFor('the daemon to end the subscription', () => world.logLines().some((l) => l.op_id === opId && l.msg !== 'request started'));
    assert.equal((await client.call('ping')).inFlight, 1);
  });

  test('close() ends the connection: an in-flight call rejects and the daemon cancels it', async () => {
    const other = await connect({ env: world.env });
    assert.equal(other.closed, false);
    const pending = other.call('sleep', { ms: 45_000 });
    await waitFor('the sleep to start', () => world.logLines().some((l) => l.msg === 'sleeping' && l.ms === 45_000));
    other.close();
    assert.equal(other.closed, true);
    await rejectsWith(pending, 'ERR_DAEMON_UNREACHABLE');
    const opId = opIdOf(world, (l) => l.msg === 'sleeping' && l.ms === 45_000);
    await waitFor('the daemon to cancel the request', () =>
      world.logLines().some((l) => l.op_id === opId && l.msg === 'request cancelled' && l.reason === 'client disconnected'),
    );
  });
});

describe('SDK type declarations', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'banger-sdk-types-'));
  after(() => {
    rmSync(scratch, { recursive: true, force: true });
  });

  test("tsconfig.sdk.json emits declarations a strict consumer of 'banger' type-checks against, error codes included", () => {
    const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const pkg = join(scratch, 'pkg');
    execFileSync(process.execPath, [tsc, '-p', join(REPO_ROOT, 'tsconfig.sdk.json'), '--outDir', pkg], { stdio: 'pipe' });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'banger', type: 'module', exports: { '.': { types: './src/sdk/index.d.ts' } } }));
    const app = join(scratch, 'app');
    mkdirSync(join(app, 'node_modules', '@types'), { recursive: true });
    symlinkSync(pkg, join(app, 'node_modules', 'banger'));
    symlinkSync(join(REPO_ROOT, 'node_modules', '@types', 'node'), join(app, 'node_modules', '@types', 'node'));
    writeFileSync(join(app, 'package.json'), JSON.stringify({ type: 'module' }));
    writeFileSync(
      join(app, 'main.ts'),
      `import { connect, BangerError, type VmInfo, type DaemonEvent } from 'banger';
const client = await connect({ autoStart: false });
const vm: VmInfo = await client.vm.create({ image: 'debian-bookworm' });
const run: { exitCode: number; stdout: string } = await client.vm.run(vm.name, ['true']);
const { patch }: { patch: Buffer } = await client.workspace.export(vm.name);
const ping: number = (await client.call('ping')).pid;
for await (const event of client.events()) { const kind: DaemonEvent['kind'] = event.kind; void kind; }
try { await client.vm.show('x'); } catch (e) {
  if (e instanceof BangerError && e.code === 'ERR_NOT_FOUND') console.log(e.hint, e.opId);
  // @ts-expect-error not one of banger's codes
  if (e instanceof BangerError && e.code === 'ERR_NO_SUCH_CODE') console.log('never');
}
// @ts-expect-error vm.show needs a ref
await client.call('vmShow');
void run; void patch; void ping;
client.close();
`,
    );
    const result = (() => {
      try {
        execFileSync(
          process.execPath,
          [
            tsc,
            '--noEmit',
            '--strict',
            '--exactOptionalPropertyTypes',
            '--target',
            'ES2023',
            '--module',
            'NodeNext',
            '--moduleResolution',
            'NodeNext',
            '--types',
            'node',
            'main.ts',
          ],
          { cwd: app, stdio: 'pipe' },
        );
        return '';
      } catch (error) {
        return String((error as { stdout?: Buffer }).stdout ?? error);
      }
    })();
    assert.equal(result, '', 'the consumer type-checks');
  });
});
