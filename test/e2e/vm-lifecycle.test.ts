import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import type { ImageInfo, PingResult, VmInfo } from '../../src/rpc/methods.js';
import { qmpCommand } from '../../src/vmm/qemu/qmp.js';
import { BangerWorld, processAlive, waitFor, vmWorldOptions, userModeLabel } from '../integration/harness.js';

/**
 * Real VMs: QEMU (TCG on these machines) booting the Debian kernel and image
 * with banger's initramfs, real sshd, a real bridge and taps. One world for
 * the whole file, so the image is built once (on its first `vm run`).
 */
/** The real uid of a process (`ps -o ruser=`), from /proc. */
function processUid(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Uid:'));
  return Number(line?.split(/\s+/)[1]);
}

describe(`VM lifecycle on real QEMU${userModeLabel()}`, () => {
  let world: BangerWorld;
  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
  });
  after(() => {
    world.close();
  });

  const show = (ref: string): Promise<VmInfo> => world.json<VmInfo>(['vm', 'show', ref]);
  /** No tap is in use, and every tap on the host is an idle one of the pool (of 2). */
  const assertOnlyPoolTaps = async (): Promise<void> => {
    const pool = (await world.json<PingResult>(['daemon', 'status'])).network?.pool;
    assert.ok(pool !== undefined, 'daemon status reports the tap pool');
    assert.deepEqual(pool.inUse, [], 'no tap in use');
    const taps = world.links().filter((link) => link !== world.bridge);
    assert.deepEqual(taps.sort(), [...pool.idle].sort(), 'no tap beyond the idle pool');
    assert.ok(pool.idle.length <= 2, 'the pool holds at most its size (2)');
  };
  const knownHosts = (): string => (existsSync(world.layout.knownHosts) ? readFileSync(world.layout.knownHosts, 'utf8') : '');

  test('vm run on a fresh state dir pulls kernel and image, runs the command, and passes its exit status', async () => {
    const result = await world.run(['vm', 'run', '--rm', '--name', 'first', '--', 'sh', '-c', 'uname -r; test -f /root/.ssh/authorized_keys; exit 7'], {
      timeoutMs: 900_000,
    });
    assert.equal(result.code, 7, result.stderr);
    assert.match(result.stdout, /^6\.1\.0-\d+-cloud-amd64$/m);
    assert.match(result.stderr, /^spec: \d+ vcpu · \d+ MiB · \d+G disk$/m);
    assert.match(result.stderr, /image debian-bookworm is not here yet: pulling it from the catalog/);
    const { images } = await world.json<{ images: ImageInfo[] }>(['image', 'list']);
    assert.deepEqual(
      images.map((i) => i.name),
      ['debian-bookworm'],
    );
    // --rm: nothing of the VM remains.
    assert.deepEqual((await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms, []);
    assert.deepEqual(world.vmmPids(), []);
  });

  test('create, exec, stop, start, exec, set --vcpu 2, restart, nproc, delete', async () => {
    // Pretend the kernel's initramfs was built by an older banger: starting a VM rebuilds it.
    const db = new Database(world.layout.storePath);
    db.prepare("UPDATE kernels SET spec = json_set(spec, '$.initHash', 'from-an-older-banger')").run();
    db.close();
    const created = await world.json<VmInfo>(['vm', 'create', '--name', 'box', '--vcpu', '1'], { timeoutMs: 300_000 });
    const check = new Database(world.layout.storePath, { readonly: true });
    const { hash } = check.prepare("SELECT json_extract(spec, '$.initHash') AS hash FROM kernels").get() as { hash: string };
    check.close();
    assert.match(hash, /^[0-9a-f]{16}$/, 'the stale initramfs was rebuilt for this banger');
    assert.equal(created.state, 'running');
    assert.equal(created.spec.vcpu, 1);
    // QEMU runs as whoever runs banger: the test user in user mode (only the helper is root).
    for (const pid of world.vmmPids()) assert.equal(processUid(pid), world.user?.uid ?? 0, `qemu ${pid} runs as ${world.user?.name ?? 'root'}`);

    // Opt-in ssh-config: after --install, plain ssh reaches box.vm through banger's own ssh_config.
    assert.equal((await world.run(['ssh-config', '--install'])).code, 0);
    const userSshConfig = join(world.env.HOME ?? '', '.ssh', 'config');
    const [ssh, ...sshArgs] = [...world.commandPrefix(), 'ssh', '-F', userSshConfig, '-o', 'BatchMode=yes', 'root@box.vm', 'cat', '/etc/hostname'];
    const plain = spawnSync(ssh, sshArgs, { encoding: 'utf8', env: world.env, timeout: 60_000 });
    assert.equal(plain.status, 0, plain.stderr);
    assert.equal(plain.stdout.trim(), 'box');
    assert.equal((await world.run(['ssh-config', '--uninstall'])).code, 0);

    const completion = await world.run(['__complete', 'vm', 'exec', 'bo']);
    assert.match(completion.stdout, /^box\trunning /m, 'VM names complete from the daemon');

    const write = await world.run(['vm', 'exec', 'box', '--', 'sh', '-c', 'echo kept > /root/note && cat /etc/hostname']);
    assert.equal(write.code, 0, write.stderr);
    assert.equal(write.stdout.trim(), 'box');

    assert.equal((await world.json<VmInfo>(['vm', 'stop', 'box'])).state, 'stopped');
    assert.deepEqual(world.vmmPids(), []);
    assert.equal((await world.json<VmInfo>(['vm', 'start', 'box'], { timeoutMs: 300_000 })).state, 'running');
    // The restart bug: the VMM must not die with the request that started it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const read = await world.run(['vm', 'exec', 'box', '--', 'cat', '/root/note']);
    assert.equal(read.code, 0, read.stderr);
    assert.equal(read.stdout.trim(), 'kept', 'the work disk survives a stop and start');

    const shrink = await world.run(['vm', 'set', 'box', '--disk-size', '2G']);
    assert.equal(shrink.code, 1);
    assert.match(shrink.stderr, /error\[ERR_INVALID_ARGUMENT\]: the work disk can only grow/);
    const grown = created.spec.diskSizeBytes + 1024 ** 3;
    const set = await world.json<VmInfo>(['vm', 'set', 'box', '--vcpu', '2', '--disk-size', `${grown / 1024 ** 3}G`]);
    assert.equal(set.spec.vcpu, 2);
    assert.equal(set.spec.diskSizeBytes, grown);
    assert.equal((await world.json<VmInfo>(['vm', 'restart', 'box'], { timeoutMs: 300_000 })).state, 'running');
    const nproc = await world.run(['vm', 'exec', 'box', '--', 'nproc']);
    assert.equal(nproc.stdout.trim(), '2');
    const df = await world.run(['vm', 'exec', 'box', '--', 'df', '--output=size', '-B1M', '/root']);
    const sizeMiB = Number(df.stdout.trim().split('\n').at(-1));
    assert.ok(sizeMiB > (created.spec.diskSizeBytes / 1024 ** 2) * 1.05, `the work disk grew (df says ${sizeMiB} MiB)`);
    const kept = await world.run(['vm', 'exec', 'box', '--', 'cat', '/root/note']);
    assert.equal(kept.stdout.trim(), 'kept', 'growing kept the data');

    const logs = await world.run(['vm', 'logs', 'box', '-n', '200']);
    assert.match(logs.stdout, /banger-init: root assembled, starting minimal init/);
    assert.match(logs.stdout, /banger-init: minimal init up/);

    const vm = await show('box');
    // The key pinned is the one banger generated into the VM's upper disk, under its address and names.
    const generated = execFileSync('debugfs', ['-R', 'cat /upper/etc/ssh/ssh_host_ed25519_key.pub', join(world.layout.vmsDir, vm.id, 'upper.ext4')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .trim()
      .split(/\s+/)
      .slice(0, 2)
      .join(' ');
    assert.match(generated, /^ssh-ed25519 /);
    assert.ok(knownHosts().split('\n').includes(`${vm.ip},box,box.vm ${generated}`), 'the generated host key is pinned before the first connection');
    const vmDir = join(world.layout.vmsDir, vm.id);
    assert.ok(existsSync(vmDir));
    assert.equal((await world.json<VmInfo>(['vm', 'delete', 'box'])).id, vm.id);
    assert.deepEqual(world.vmmPids(), [], 'no qemu process');
    await assertOnlyPoolTaps();
    assert.equal(existsSync(vmDir), false, 'no VM dir');
    assert.doesNotMatch(knownHosts(), new RegExp(vm.ip.replaceAll('.', '\\.')), 'no known_hosts entry');
  });

  test("--init systemd boots the image's systemd and stops through it", async () => {
    const vm = await world.json<VmInfo>(['vm', 'create', '--name', 'sysd', '--init', 'systemd'], { timeoutMs: 300_000 });
    assert.equal(vm.spec.init, 'systemd');
    const pid1 = await world.run(['vm', 'exec', 'sysd', '--', 'cat', '/proc/1/comm']);
    assert.equal(pid1.stdout.trim(), 'systemd');
    const stopped = await world.run(['vm', 'stop', 'sysd', '--json']);
    assert.equal(stopped.code, 0, stopped.stderr);
    assert.doesNotMatch(stopped.stderr, /killing it/, 'the guest powered off by itself');
    assert.deepEqual(world.vmmPids(), []);
    await world.json<VmInfo>(['vm', 'delete', 'sysd']);
  });

  test('two VMs created at once on a host without the bridge both come up, and on the shared network reach each other', async () => {
    assert.deepEqual(world.vmmPids(), []);
    for (const link of world.links()) execFileSync('ip', [...(world.netns === undefined ? [] : ['-n', world.netns]), 'link', 'del', link]);
    const results = await Promise.all(
      ['pair-a', 'pair-b'].map((name) => world.run(['vm', 'create', '--name', name, '--network', 'shared', '--json'], { timeoutMs: 300_000 })),
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const ips = results.map((r) => (JSON.parse(r.stdout) as VmInfo).ip);
    assert.notEqual(ips[0], ips[1], 'each VM has its own address');
    const ping = await world.run(['vm', 'exec', 'pair-a', '--', '/banger/busybox', 'ping', '-c', '1', '-W', '5', ips[1] ?? '']);
    assert.equal(ping.code, 0, `pair-a reaches pair-b over the bridge: ${ping.stdout}${ping.stderr}`);
    for (const name of ['pair-a', 'pair-b']) await world.json<VmInfo>(['vm', 'delete', name]);
  });

  test('lookups: exact name wins, prefixes work, ambiguity is an error listing the matches', async () => {
    await world.json<VmInfo>(['vm', 'create', '--name', 'beta-sandbox', '--no-start']);
    await world.json<VmInfo>(['vm', 'create', '--name', 'beta', '--no-start']);
    assert.equal((await show('beta')).name, 'beta', 'a name may prefix another');
    assert.equal((await show('beta-s')).name, 'beta-sandbox');
    await world.json<VmInfo>(['vm', 'create', '--name', 'gamma-one', '--no-start']);
    await world.json<VmInfo>(['vm', 'create', '--name', 'gamma-two', '--no-start']);
    const ambiguous = await world.run(['vm', 'show', 'gamma']);
    assert.equal(ambiguous.code, 1);
    assert.match(ambiguous.stderr, /error\[ERR_AMBIGUOUS\]: "gamma" matches 2 vms: gamma-one \(\w+\), gamma-two/);
    const duplicate = await world.run(['vm', 'create', '--name', 'beta', '--no-start']);
    assert.match(duplicate.stderr, /error\[ERR_ALREADY_EXISTS\]: a VM named "beta" already exists/);
    const badName = await world.run(['vm', 'create', '--name', 'Not_A_Label', '--no-start']);
    assert.match(badName.stderr, /error\[ERR_INVALID_ARGUMENT\]: "Not_A_Label" is not a valid VM name/);
    for (const name of ['beta-sandbox', 'beta', 'gamma-one', 'gamma-two']) await world.json<VmInfo>(['vm', 'delete', name]);
  });

  test('a create that fails mid-way leaves nothing behind', async () => {
    // An image without an init: with --init systemd the guest cannot hand over and powers off.
    const tree = join(world.root, 'broken-root');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'hostname'), 'broken\n');
    const rootfs = join(world.root, 'broken.ext4');
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, rootfs, '16M'], { stdio: 'pipe' });
    await world.json<ImageInfo>(['image', 'register', 'broken', '--rootfs', rootfs, '--kernel', 'debian-bookworm-cloud']);

    const result = await world.run(['vm', 'create', '--name', 'doomed', '--image', 'broken', '--init', 'systemd'], { timeoutMs: 300_000 });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /error\[ERR_VM_START_FAILED\]: the VM stopped while booting/);
    assert.deepEqual((await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms, []);
    assert.deepEqual(world.vmmPids(), []);
    await assertOnlyPoolTaps();
    assert.doesNotMatch(knownHosts(), /doomed/, 'the rollback forgot the host key it pinned');
    assert.deepEqual(existsSync(world.layout.vmsDir) ? readdirSync(world.layout.vmsDir) : [], [], 'no VM directory');
    await world.json<ImageInfo>(['image', 'delete', 'broken']);
  });

  test('kill -9 of the daemon: the VM keeps running and stays manageable; one that died meanwhile is cleaned up', async () => {
    const vm = await world.json<VmInfo>(['vm', 'create', '--name', 'survivor'], { timeoutMs: 300_000 });
    // The QMP control socket answers (stop's ACPI fallback and kill rely on it).
    const status = (await qmpCommand(join(world.layout.runtimeDir, 'vms', vm.id, 'qmp.sock'), 'query-status')) as { status: string; running: boolean };
    assert.equal(status.running, true);
    const daemonPid = (await world.json<{ pid: number }>(['daemon', 'status'])).pid;
    process.kill(daemonPid, 'SIGKILL');
    await waitFor('the daemon to die', () => !processAlive(daemonPid));

    const after = await show('survivor');
    assert.equal(after.state, 'running', 'reconcile kept the live VM');
    assert.equal(after.pid, vm.pid);
    const exec = await world.run(['vm', 'exec', 'survivor', '--', 'echo', 'still here']);
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout.trim(), 'still here');

    // Now the VM's qemu dies while the daemon is down.
    const secondDaemon = (await world.json<{ pid: number }>(['daemon', 'status'])).pid;
    process.kill(secondDaemon, 'SIGKILL');
    await waitFor('the daemon to die', () => !processAlive(secondDaemon));
    assert.ok(after.pid !== null);
    process.kill(after.pid, 'SIGKILL');
    await waitFor('qemu to die', () => !processAlive(after.pid ?? 0));

    const demoted = await show('survivor');
    assert.equal(demoted.state, 'stopped');
    assert.match(demoted.lastError ?? '', /stopped while the daemon was down/);
    await assertOnlyPoolTaps();
    await world.json<VmInfo>(['vm', 'delete', 'survivor']);
  });

  test('a guest presenting another host key than the one banger generated is refused as a possible MITM', async () => {
    await world.json<VmInfo>(['vm', 'create', '--name', 'mitm'], { timeoutMs: 300_000 });
    // The guest swaps its host key and sshd reloads it (after this exec has returned).
    const swap = await world.run([
      'vm',
      'exec',
      'mitm',
      '--',
      'sh',
      '-c',
      'rm -f /etc/ssh/ssh_host_ed25519_key* && ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key && (sleep 1; kill -HUP "$(cat /run/sshd.pid 2>/dev/null || /banger/busybox pgrep -o -x sshd)") >/dev/null 2>&1 &',
    ]);
    assert.equal(swap.code, 0, swap.stderr);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    // A new daemon must open a new connection, which meets the new key.
    assert.equal((await world.run(['daemon', 'stop'])).code, 0);
    const refused = await world.run(['vm', 'exec', 'mitm', '--', 'true']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error\[ERR_HOST_KEY_MISMATCH\]: .*possible MITM/);
    const ssh = await world.run(['vm', 'ssh', 'mitm', '--', 'true']);
    assert.notEqual(ssh.code, 0, 'the system ssh refuses it too');
    await world.json<VmInfo>(['vm', 'delete', 'mitm']);
    assert.doesNotMatch(knownHosts(), /mitm/, 'delete forgets the pin');
  });
});
