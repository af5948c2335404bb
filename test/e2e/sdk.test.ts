import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';

import { BangerError, connect, type BangerClient, type DaemonEvent, type ProgressEvent, type VmInfo } from '../../src/sdk/index.js';
import { TestRepo } from '../helpers/git-repo.js';
import { qemuProcesses } from '../helpers/leaks.js';
import { BangerWorld, collect, REPO_ROOT, userModeLabel, vmWorldOptions, waitFor } from '../integration/harness.js';

/**
 * The SDK on real QEMU VMs: streaming exec (stdin, separate stdout and
 * stderr, exit codes, signals, abort), stats, ports and events, and the
 * example program of docs/sdk.md run exactly as written, through the
 * package's "exports", as a user would run it.
 */
describe(`the SDK on real QEMU${userModeLabel()}`, { timeout: 1_800_000 }, () => {
  let world: BangerWorld;
  let client: BangerClient;
  let vm: VmInfo;
  const scratch = mkdtempSync(join(tmpdir(), 'banger-sdk-e2e-'));
  const repos: TestRepo[] = [];

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    if (world.user !== undefined) chownSync(scratch, world.user.uid, world.user.gid);
    // The daemon runs as the world's user (started by the CLI); this test process reaches it on its socket.
    const started = await world.run(['daemon', 'start']);
    assert.equal(started.code, 0, started.stderr);
    client = await connect({ socketPath: world.layout.socketPath });
    const stages: string[] = [];
    vm = await client.vm.create({ name: 'sdk', onProgress: (event: ProgressEvent) => stages.push(event.stage) });
    assert.equal(vm.state, 'running');
    assert.ok(stages.length > 0, 'create reported progress');
  });
  after(() => {
    client.close();
    world.close();
    for (const repo of repos) repo.remove();
    rmSync(scratch, { recursive: true, force: true });
  });

  /** Guest processes whose command line starts with `prefix` (read from /proc: the image has no ps). */
  async function guestProcesses(prefix: string): Promise<string[]> {
    const listed = await client.vm.run('sdk', ['sh', '-c', 'for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done']);
    assert.equal(listed.exitCode, 0, listed.stderr);
    return listed.stdout.split('\n').filter((line) => line.startsWith(prefix));
  }

  test('exec streams stdin in and stdout out: cat echoes what is written, then exits 0 when stdin ends', async () => {
    const cat = client.vm.exec('sdk', ['cat']);
    await cat.write('hello ');
    await cat.write(Buffer.from('from the SDK\n'));
    cat.end();
    const chunks: Buffer[] = [];
    for await (const chunk of cat.stdout) chunks.push(chunk);
    assert.equal(Buffer.concat(chunks).toString(), 'hello from the SDK\n');
    assert.deepEqual(await cat.result, { exitCode: 0, signal: null });
    assert.equal(cat.exitCode, 0);
  });

  test('run keeps stdout and stderr apart and passes a non-zero exit through as a result', async () => {
    const result = await client.vm.run('sdk', ['sh', '-c', 'echo out; echo err >&2; echo more out; exit 3']);
    assert.deepEqual(result, { exitCode: 3, signal: null, stdout: 'out\nmore out\n', stderr: 'err\n' });
  });

  test('large stdin from a Readable and large stdout through the iterable arrive whole (backpressure both ways)', async () => {
    const input = Buffer.alloc(3 * 1024 * 1024, 'abcdefgh');
    const counted = await client.vm.run('sdk', ['wc', '-c'], { stdin: Readable.from([input.subarray(0, 1_000_000), input.subarray(1_000_000)]) });
    assert.deepEqual([counted.exitCode, counted.stdout.trim()], [0, String(input.length)]);
    const zeros = client.vm.exec('sdk', ['head', '-c', '8000000', '/dev/zero'], { stdin: '' });
    let bytes = 0;
    for await (const chunk of zeros.stdout) {
      bytes += chunk.length;
      if (chunk.some((byte) => byte !== 0)) assert.fail('only zeros');
      await new Promise((resolve) => setImmediate(resolve)); // a slow reader
    }
    assert.equal(bytes, 8_000_000);
    assert.equal((await zeros.result).exitCode, 0);
  });

  test('kill() signals the guest command: INT ends sleep with signal INT (status 130)', async () => {
    const sleeper = client.vm.exec('sdk', ['sleep', '100'], { stdin: '' });
    await waitFor('the sleep to run in the guest', async () => (await guestProcesses('sleep 100')).length === 1, 60_000);
    sleeper.kill('SIGINT');
    assert.deepEqual(await sleeper.result, { exitCode: 130, signal: 'INT' });
  });

  test('aborting exec rejects with ERR_CANCELLED and leaves no guest process', async () => {
    const controller = new AbortController();
    const sleeper = client.vm.exec('sdk', ['sleep', '100'], { stdin: '', signal: controller.signal });
    await waitFor('the sleep to run in the guest', async () => (await guestProcesses('sleep 100')).length === 1, 60_000);
    controller.abort();
    await assert.rejects(sleeper.result, (error: unknown) => error instanceof BangerError && error.code === 'ERR_CANCELLED');
    assert.deepEqual(await guestProcesses('sleep 100'), [], 'the guest command is gone');
    assert.equal((await client.call('ping')).inFlight, 1, 'nothing left in flight');
  });

  test('stats and ports of the running VM', async () => {
    const [stats] = await client.vm.stats('sdk');
    assert.equal(stats?.vm, 'sdk');
    assert.equal(stats.state, 'running');
    assert.ok(stats.intervalMs > 0);
    const ports = await client.vm.ports('sdk');
    assert.equal(ports.ip, vm.ip);
    assert.ok(
      ports.ports.some((p) => p.proto === 'tcp' && p.port === 22),
      `sshd listens on 22: ${JSON.stringify(ports.ports)}`,
    );
  });

  test('events follow the VM to its deletion; break ends the subscription', async () => {
    const seen: DaemonEvent[] = [];
    let deleting: Promise<VmInfo> | undefined;
    for await (const event of client.events({ kinds: ['vm.changed', 'vm.deleted'] })) {
      seen.push(event);
      // The subscription starts with the VM as it is; then delete it and watch.
      if (event.kind === 'vm.changed' && event.vm.name === 'sdk' && deleting === undefined) deleting = client.vm.delete('sdk');
      if (event.kind === 'vm.deleted' && event.vm.name === 'sdk') break;
    }
    assert.ok(deleting !== undefined);
    await deleting;
    const first = seen[0];
    assert.ok(first?.kind === 'vm.changed' && first.vm.state === 'running', `began with the running VM: ${JSON.stringify(first)}`);
    assert.equal(seen.at(-1)?.kind, 'vm.deleted');
    await waitFor('the daemon to end the subscription', async () => (await client.call('ping')).inFlight === 1);
    assert.deepEqual(await client.vm.list(), []);
  });

  test('the example program of docs/sdk.md runs as written: VM created, repo in, edit, patch out, VM gone', async () => {
    const markdown = readFileSync(join(REPO_ROOT, 'docs', 'sdk.md'), 'utf8');
    const source = /```js sdk-example\n([\s\S]*?)\n```/.exec(markdown)?.[1];
    assert.ok(source !== undefined, 'docs/sdk.md has a ```js sdk-example block');
    // A project of the user's: the example, and `banger` resolving to this package (its "exports").
    const project = join(scratch, 'project');
    mkdirSync(join(project, 'node_modules'), { recursive: true });
    symlinkSync(REPO_ROOT, join(project, 'node_modules', 'banger'));
    writeFileSync(join(project, 'example.mjs'), `${source}\n`);
    if (world.user !== undefined) chownSync(project, world.user.uid, world.user.gid);

    const repo = new TestRepo();
    repos.push(repo);
    repo.write('README.md', '# demo\n').write('src/main.c', 'int main(void) { return 0; }\n');
    repo.commit('base');
    const patchFile = join(project, 'out.patch');
    const finishedBefore = (method: string): number => world.logLines().filter((l) => l.method === method && l.msg === 'request finished').length;
    const [creates, deletes] = [finishedBefore('vm.create'), finishedBefore('vm.delete')];

    const [command, ...args] = [...world.commandPrefix(), process.execPath, 'example.mjs'];
    const child = spawn(command, args, {
      cwd: project,
      env: { ...world.env, REPO: repo.root, VM_NAME: 'sdk-example', PATCH_FILE: patchFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = await collect(child, 900_000);
    assert.equal(run.code, 0, `stdout: ${run.stdout}\nstderr: ${run.stderr}`);

    const vmId = /^created VM sdk-example \(([0-9a-f]+)\)/m.exec(run.stdout)?.[1];
    assert.ok(vmId !== undefined, run.stdout);
    assert.match(run.stdout, /^deleted VM sdk-example$/m);
    assert.equal(finishedBefore('vm.create'), creates + 1, 'the daemon created one VM');
    assert.equal(finishedBefore('vm.delete'), deletes + 1, 'and deleted one');
    const shown = await world.run(['vm', 'show', 'sdk-example', '--json']);
    assert.equal((JSON.parse(shown.stdout) as { error: { code: string } }).error.code, 'ERR_NOT_FOUND', 'the VM is gone');
    assert.deepEqual(
      qemuProcesses(world).filter((q) => q.vmId === vmId),
      [],
      'its QEMU is gone',
    );

    const patch = readFileSync(patchFile, 'utf8');
    assert.match(patch, /^\+edited by the banger SDK$/m);
    repo.git('apply', '--check', patchFile);
    repo.git('apply', patchFile);
    assert.equal(readFileSync(join(repo.root, 'README.md'), 'utf8'), '# demo\nedited by the banger SDK\n');
  });
});
