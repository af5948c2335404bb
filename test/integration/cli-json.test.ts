import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { readJsonDocs, shapeKeys } from '../helpers/json-docs.js';
import { BangerWorld } from './harness.js';

/**
 * The shapes docs/json.md promises, checked against what the commands that
 * need no VM really print: every documented key is there, and a closed
 * shape (no `...Type` spread) has no undocumented one.
 */
describe('--json output matches docs/json.md', () => {
  let world: BangerWorld;
  const docs = new Map(readJsonDocs().map((s) => [s.command, s.shape]));
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  async function checkShape(args: string[], options: { shape?: string; expectCode?: number } = {}): Promise<Record<string, unknown>> {
    const command = args.filter((a) => !a.startsWith('-')).join(' ');
    const shape = options.shape ?? docs.get(command);
    assert.ok(shape !== undefined, `docs/json.md has a shape for banger ${command}`);
    const keys = shapeKeys(shape);
    assert.ok(keys !== undefined, `the shape of banger ${command} is an object: ${shape}`);
    const result = await world.run([...args, '--json']);
    assert.equal(result.code, options.expectCode ?? 0, `banger ${args.join(' ')}: ${result.stderr}`);
    const document = JSON.parse(result.stdout) as Record<string, unknown>;
    const actual = Object.keys(document);
    for (const key of keys.required) assert.ok(actual.includes(key), `banger ${command} --json lacks "${key}" (${shape})`);
    if (!keys.open) {
      const extra = actual.filter((key) => !keys.required.includes(key) && !keys.optional.includes(key));
      assert.deepEqual(extra, [], `banger ${command} --json has keys docs/json.md does not list`);
    }
    return document;
  }

  test('daemon status when not running: its own shape and exit status 3', async () => {
    const document = await checkShape(['daemon', 'status'], { shape: '{ running: boolean, socketPath: string, logPath: string }', expectCode: 3 });
    assert.equal(document.running, false);
  });

  test('daemon start, then status when running', async () => {
    await checkShape(['daemon', 'start'], {
      shape: '{ alreadyRunning: boolean, pid: number, version: string, buildId: string, socketPath: string, ...PingResult }',
    });
    const document = await checkShape(['daemon', 'status'], { shape: '{ running: true, stale: boolean, pid: number, ...PingResult }' });
    assert.equal(document.running, true);
  });

  for (const args of [
    ['version'],
    ['vm', 'list'],
    ['ps'],
    ['image', 'list'],
    ['image', 'catalog'],
    ['kernel', 'list'],
    ['kernel', 'catalog'],
    ['ssh-config'],
  ]) {
    test(`banger ${args.join(' ')}`, async () => {
      await checkShape(args);
    });
  }

  test('vm delete --all --force with no VMs: the several-VMs shape, empty', async () => {
    const document = await checkShape(['vm', 'delete', '--all', '--force'], { shape: '{ deleted: VmInfo[], failed: { ref, code, message, hint }[] }' });
    assert.deepEqual(document, { deleted: [], failed: [] });
  });

  test('vm delete of missing VMs: each failure listed with its code, exit status 1', async () => {
    const document = await checkShape(['vm', 'delete', 'nope-a', 'nope-b'], {
      shape: '{ deleted: VmInfo[], failed: { ref, code, message, hint }[] }',
      expectCode: 1,
    });
    const failed = document.failed as { ref: string; code: string }[];
    assert.deepEqual(
      failed.map((f) => [f.ref, f.code]),
      [
        ['nope-a', 'ERR_NOT_FOUND'],
        ['nope-b', 'ERR_NOT_FOUND'],
      ],
    );
  });

  test('vm delete refuses --all without --force, and no VM named at all, as usage errors', async () => {
    for (const args of [
      ['vm', 'delete', '--all'],
      ['vm', 'delete'],
      ['vm', 'delete', 'box', '--all', '--force'],
    ]) {
      const result = await world.run([...args, '--json']);
      assert.equal(result.code, 2, args.join(' '));
      assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'ERR_USAGE');
    }
  });

  test('vm.defaults: what create fills in, and where each value came from', async () => {
    // No CLI command prints it alone; `vm create` shows it as its spec line. The daemon serves it.
    const { RpcClient } = await import('../../src/rpc/client.js');
    const client = await RpcClient.connect(world.layout.socketPath);
    try {
      const before = await client.call('vmDefaults', {});
      assert.ok(before.vcpu >= 1 && before.memoryMiB >= 1024 && before.diskSizeBytes >= 1024 ** 3);
      assert.equal(before.init, 'minimal');
      assert.notEqual(before.sources.vcpu, 'config');
      // An edit of [vm_defaults] applies to the next create without a daemon restart, as it did when the CLI read it.
      world.writeConfig('[vm_defaults]\nvcpu = 3\nmemory = "1536M"\n');
      const after = await client.call('vmDefaults', {});
      assert.deepEqual(
        { vcpu: after.vcpu, memoryMiB: after.memoryMiB, sources: after.sources },
        { vcpu: 3, memoryMiB: 1536, sources: { vcpu: 'config', memoryMiB: 'config', diskSizeBytes: 'builtin' } },
      );
    } finally {
      client.close();
    }
  });

  test('daemon stop', async () => {
    await checkShape(['daemon', 'stop']);
  });
});
