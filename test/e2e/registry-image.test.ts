import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import pino from 'pino';

import { DEFAULT_KERNEL_MIRROR } from '../../src/config/schema.js';
import type { ImageInfo, VmInfo } from '../../src/rpc/methods.js';
import { resolveBuildHost } from '../../src/services/image/build-namespace.js';
import { buildDebianRoot } from '../../src/services/image/rootfs-builder.js';
import { buildOciLayout, fixtureImageTrees, TestRegistry } from '../helpers/oci-registry.js';
import { BangerWorld, SHARED_CACHE, userModeLabel, vmWorldOptions } from '../integration/harness.js';

/**
 * Registry images in real VMs: a busybox-only image (no sshd, no init of
 * its own) pushed as a multi-platform index to a real loopback registry,
 * pulled by `vm run --image <ref>` itself, boots under banger's init and
 * SSH server; in the guest, owners, modes, the whiteout, the opaque dir and
 * the hard link are as the layers made them, and commands run with the
 * image's Env, WorkingDir and User.
 */
describe(`registry images in real VMs${userModeLabel()}`, { timeout: 30 * 60_000 }, () => {
  let world: BangerWorld;
  let registry: TestRegistry;
  let ref: string;
  const root = mkdtempSync(join(tmpdir(), 'banger-e2e-registry-'));

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    registry = await TestRegistry.start();
    const trees = fixtureImageTrees(join(root, 'trees'));
    buildOciLayout(join(root, 'layout'), 'v1', [trees.base, trees.top], {
      platforms: 'index',
      config: { Env: ['PATH=/usr/bin:/bin', 'GREETING=hello from the image'], WorkingDir: '/srv', User: 'dev' },
    });
    registry.push(join(root, 'layout'), 'v1', 'team/busybox');
    ref = `${registry.host}/team/busybox:v1`;
  });
  after(() => {
    world.close();
    registry.close();
    rmSync(root, { recursive: true, force: true });
  });

  test('vm run --image <ref> pulls the image and runs in it as its User, in its WorkingDir, with its Env', async () => {
    const script = [
      'id -un',
      'pwd',
      'echo "$GREETING"',
      'stat -c "%a %u %g %n" /usr/bin/setuid-tool /home/dev /home/dev/notes',
      'cat /home/dev/notes',
      'test ! -e /etc/gone && echo gone-is-gone',
      'ls /opt/old',
      'stat -c %i /srv/data /srv/data-link | uniq | wc -l',
    ].join('; ');
    const result = await world.run(['vm', 'run', '--rm', '--image', ref, '--', 'sh', '-c', script], { timeoutMs: 900_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /pulling it from its registry/);
    const lines = result.stdout.trimEnd().split('\n');
    assert.deepEqual(lines, [
      'dev',
      '/srv',
      'hello from the image',
      '4755 0 0 /usr/bin/setuid-tool',
      '755 1000 1000 /home/dev',
      '600 1000 1000 /home/dev/notes',
      'mine',
      'gone-is-gone',
      'upper',
      '1',
    ]);
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => [i.name, i.ref]),
      [['busybox-v1', ref]],
    );
    assert.deepEqual((await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms, []);
  });

  test('a VM of an image without sshd answers vm exec (signals and exit status too) and vm ssh-style root commands', async () => {
    const created = await world.json<VmInfo>(['vm', 'create', '--name', 'bb', '--image', 'busybox-v1'], { timeoutMs: 300_000 });
    assert.equal(created.state, 'running');
    const exec = await world.run(['vm', 'exec', 'bb', '--', 'sh', '-c', 'id -u; exit 3']);
    assert.equal(exec.code, 3, exec.stderr);
    assert.equal(exec.stdout, '1000\n');
    // The SSH server is banger's own: the image has none.
    const server = await world.run(['vm', 'exec', 'bb', '--', 'sh', '-c', 'test ! -e /usr/sbin/sshd && ps | grep -c "[d]ropbear"']);
    assert.equal(server.code, 0, server.stderr);
    assert.ok(Number(server.stdout.trim()) >= 1, server.stdout);
    // Ctrl-C reaches the guest command.
    const child = world.spawn(['vm', 'exec', 'bb', '--', 'sh', '-c', 'echo started; sleep 60']);
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) =>
      child.stdout?.on('data', () => {
        resolve();
      }),
    );
    child.kill('SIGINT');
    assert.equal(await exited, 130);
    const stop = await world.run(['vm', 'stop', 'bb'], { timeoutMs: 120_000 });
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await world.run(['vm', 'delete', 'bb'])).code, 0);

    // Shared as a bundle: exported here, pulled by a fresh banger (its own state dir), it boots the same.
    // A directory the daemon's user owns: it writes the bundle there, and the fresh banger reads it.
    const shared = join(root, 'shared');
    mkdirSync(shared);
    chmodSync(root, 0o755);
    if (world.user !== undefined) chownSync(shared, world.user.uid, world.user.gid);
    const bundle = join(shared, 'busybox.tar.zst');
    const exported = await world.json<{ sha256: string; path: string }>(['image', 'export', 'busybox-v1', bundle], { timeoutMs: 300_000 });
    assert.equal(exported.path, bundle);
    assert.equal((await world.run(['image', 'delete', 'busybox-v1'])).code, 0);
    const fresh = await BangerWorld.create(vmWorldOptions());
    try {
      const pulled = await fresh.json<{ image: ImageInfo }>(['image', 'pull', bundle, '--sha256', exported.sha256], { timeoutMs: 600_000 });
      assert.equal(pulled.image.name, 'busybox-v1');
      const run = await fresh.run(['vm', 'run', '--rm', '--image', 'busybox-v1', '--', 'sh', '-c', 'id -un; cat /opt/old/upper'], { timeoutMs: 600_000 });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout, 'dev\nfrom the top layer\n', "the image's User and content came along");
    } finally {
      fresh.close();
    }
  });

  test('a Debian minbase root (glibc, bash for root, no sshd) from a registry boots and runs commands', async () => {
    // What debian:bookworm-slim is: minbase, nothing else. Built here with mmdebstrap (Docker Hub is out of reach).
    const tarball = join(root, 'debian.tar');
    const entry = { name: 'slim', description: 'minbase', suite: 'bookworm', packages: ['bash'], kernel: 'debian-bookworm-cloud' }; // bash is essential already: minbase as it is
    const ctx = { opId: 'op_test', signal: new AbortController().signal, log: pino({ level: 'silent' }), progress: () => undefined };
    await buildDebianRoot(entry, DEFAULT_KERNEL_MIRROR, tarball, join(SHARED_CACHE, 'apt-archives-e2e'), resolveBuildHost(), ctx);
    buildOciLayout(join(root, 'debian-layout'), 'slim', [], {
      rawLayers: [readFileSync(tarball)],
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    });
    rmSync(tarball, { force: true });
    registry.push(join(root, 'debian-layout'), 'slim', 'library/debian');
    const result = await world.run(
      [
        'vm',
        'run',
        '--rm',
        '--image',
        `${registry.host}/library/debian:slim`,
        '--',
        'bash',
        '-c',
        '. /etc/os-release; echo "$ID $VERSION_ID"; id -un; getent passwd root | cut -d: -f7; test ! -e /usr/sbin/sshd && echo no-sshd',
      ],
      { timeoutMs: 900_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(result.stdout.trimEnd().split('\n'), ['debian 12', 'root', '/bin/bash', 'no-sshd']);
    assert.equal((await world.run(['image', 'delete', 'debian-slim'])).code, 0);
  });

  test('--init systemd is refused for a registry image, with nothing created', async () => {
    const result = await world.run(['vm', 'create', '--name', 'sd', '--image', ref, '--init', 'systemd', '--no-start'], { timeoutMs: 300_000 });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error\[ERR_INVALID_ARGUMENT\].*banger's own init/);
    assert.deepEqual((await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms, []);
  });
});
