import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import type { KernelInfo } from '../../src/rpc/methods.js';
import { BangerWorld } from './harness.js';

/**
 * Kernel pull against Debian's real archive (signature and hashes checked),
 * and import, list, show, delete through the real daemon and CLI.
 */
describe('kernels', () => {
  let world: BangerWorld;
  let pulled: KernelInfo;
  before(() => {
    world = new BangerWorld({ sharedDownloads: true });
  });
  after(() => {
    world.close();
  });

  test('the catalog offers the Debian cloud kernel', async () => {
    const { entries } = await world.json<{ entries: { name: string; pulled: boolean }[] }>(['kernel', 'catalog']);
    assert.deepEqual(
      entries.map((e) => [e.name, e.pulled]),
      [['debian-bookworm-cloud', false]],
    );
  });

  test('two concurrent pulls of one name make exactly one kernel', async () => {
    const pulls = await Promise.all([1, 2].map(() => world.run(['kernel', 'pull', 'debian-bookworm-cloud', '--json'], { timeoutMs: 600_000 })));
    for (const p of pulls) assert.equal(p.code, 0, p.stderr);
    const [first, second] = pulls.map((p) => JSON.parse(p.stdout) as { kernel: KernelInfo; pulled: boolean });
    assert.ok(first !== undefined && second !== undefined);
    assert.equal(first.kernel.id, second.kernel.id);
    pulled = first.kernel;
    const { kernels } = await world.json<{ kernels: KernelInfo[] }>(['kernel', 'list']);
    assert.deepEqual(
      kernels.map((k) => k.id),
      [pulled.id],
    );

    // Progress streamed as JSON lines on stderr, stage by stage: the pull that
    // did the work reports every stage; the one that joined it says it waited,
    // then hears the shared work's stages from then on.
    const stagesOf = (stderr: string): string[] =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => (JSON.parse(l) as { progress: { stage: string } }).progress.stage);
    const stages = pulls.map((p) => stagesOf(p.stderr));
    const joiner = stages.find((s) => s.includes('wait'));
    const leader = stages.find((s) => !s.includes('wait'));
    assert.ok(joiner !== undefined && leader !== undefined, 'one pull led, the other joined');
    for (const stage of ['resolve', 'download', 'unpack', 'vmlinux', 'initramfs']) assert.ok(leader.includes(stage), `stage ${stage}`);
    assert.equal(joiner[0], 'wait');
    for (const stage of joiner.slice(1)) assert.ok(leader.includes(stage), `the joiner's stage ${stage} is one of the work's`);
  });

  test('the pulled kernel is the newest cloud build, with vmlinux, modules and initramfs', () => {
    assert.equal(pulled.source, 'catalog');
    assert.match(pulled.release ?? '', /^6\.1\.0-\d+-cloud-amd64$/);
    assert.match(pulled.package?.url ?? '', /^http:\/\/deb\.debian\.org\/debian(-security)?\/pool\/.*linux-image-6\.1\.0-\d+-cloud-amd64_.*_amd64\.deb$/);
    assert.deepEqual(pulled.modules, ['virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'failover', 'net_failover', 'virtio_net', 'overlay']);
    assert.deepEqual([...readFileSync(pulled.files.vmlinux).subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    const listing = execFileSync('busybox', ['cpio', '-t', '-F', pulled.files.initramfs], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).split(
      '\n',
    );
    for (const entry of ['init', 'bin/busybox', 'dev/console', 'etc/banger/modules', 'lib/modules/virtio_net.ko', 'lib/modules/overlay.ko']) {
      assert.ok(listing.includes(entry), `initramfs has ${entry}`);
    }
  });

  test('pulling again keeps the existing kernel', async () => {
    const again = await world.json<{ kernel: KernelInfo; pulled: boolean }>(['kernel', 'pull', 'debian-bookworm-cloud']);
    assert.equal(again.pulled, false);
    assert.equal(again.kernel.id, pulled.id);
  });

  test('show resolves a name prefix; an unknown catalog name is a clear error', async () => {
    assert.equal((await world.json<KernelInfo>(['kernel', 'show', 'debian'])).id, pulled.id);
    assert.equal((await world.json<KernelInfo>(['kernel', 'show', pulled.id.slice(0, 6)])).id, pulled.id);
    const missing = await world.run(['kernel', 'pull', 'no-such-kernel']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /error\[ERR_NOT_FOUND\]: no kernel named "no-such-kernel" in the catalog/);
  });

  test('import takes a vmlinux and a module dir', async () => {
    const imported = await world.json<KernelInfo>([
      'kernel',
      'import',
      'mine',
      '--kernel',
      pulled.files.vmlinux,
      '--modules',
      join(pulled.files.dir, 'modules'),
    ]);
    assert.equal(imported.source, 'import');
    assert.deepEqual(imported.modules, pulled.modules);
    assert.ok(existsSync(imported.files.initramfs));
    const duplicate = await world.run(['kernel', 'import', 'mine', '--kernel', pulled.files.vmlinux]);
    assert.equal(duplicate.code, 1);
    assert.match(duplicate.stderr, /ERR_ALREADY_EXISTS/);
  });

  test('a failed import leaves nothing behind', async () => {
    const bogus = join(world.root, 'not-a-kernel');
    writeFileSync(bogus, 'just text');
    const before = readdirSync(world.layout.kernelsDir).sort();
    const result = await world.run(['kernel', 'import', 'broken', '--kernel', bogus]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error\[ERR_INVALID_ARGUMENT\]: cannot extract vmlinux: not a bzImage/);
    assert.deepEqual(readdirSync(world.layout.kernelsDir).sort(), before, 'no staging dir or kernel dir left');
    const { kernels } = await world.json<{ kernels: KernelInfo[] }>(['kernel', 'list']);
    assert.ok(!kernels.some((k) => k.name === 'broken'));
  });

  test('delete is refused while an image uses the kernel, and removes its files otherwise', async () => {
    const mine = await world.json<KernelInfo>(['kernel', 'show', 'mine']);
    const db = new Database(world.layout.storePath);
    const now = new Date().toISOString();
    db.prepare(
      "INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('img1', 'uses-mine', 'ready', 'register', ?, ?, ?)",
    ).run(mine.id, now, now);
    const refused = await world.run(['kernel', 'delete', 'mine']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error\[ERR_IN_USE\]: kernel mine is used by image uses-mine/);
    db.prepare("DELETE FROM images WHERE id = 'img1'").run();
    db.close();
    const deleted = await world.json<KernelInfo>(['kernel', 'rm', 'mine']);
    assert.equal(deleted.id, mine.id);
    assert.equal(existsSync(mine.files.dir), false);
  });
});
