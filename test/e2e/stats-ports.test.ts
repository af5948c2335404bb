import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { RpcClient } from '../../src/rpc/client.js';
import type { DaemonEvent, GuestPortInfo, VmInfo, VmStatsInfo, VmStatsSample } from '../../src/rpc/methods.js';
import { BangerWorld, userModeLabel, vmWorldOptions, waitFor } from '../integration/harness.js';

/**
 * Stats, ports and the event stream against a real VM (QEMU, TCG here): a
 * guest process listening on TCP is found by `vm ports` with its name and the
 * address the host reaches it at; `vm stats` reports the VMM's RSS and the
 * guest's memory within the VM's size; a daemon.events subscriber sees
 * samples arrive and the VM go stopping -> stopped. One VM for the file.
 */
describe(`VM stats, ports and events on real QEMU${userModeLabel()}`, () => {
  let world: BangerWorld;
  let vm: VmInfo;
  const MEMORY_MIB = 512;

  before(async () => {
    world = await BangerWorld.create(vmWorldOptions());
    // Short, so a test waits a second or two for a sample, not five.
    world.writeConfig('stats_poll_interval = "1s"');
    vm = await world.json<VmInfo>(['vm', 'create', '--name', 'probe', '--memory', String(MEMORY_MIB)], { timeoutMs: 900_000 });
  });
  after(() => {
    world.close();
  });

  const ports = async (): Promise<GuestPortInfo[]> => (await world.json<{ vm: string; ip: string; ports: GuestPortInfo[] }>(['vm', 'ports', 'probe'])).ports;

  test('vm ports lists a guest listener with its process and the host address; a loopback one is guest only', async () => {
    // busybox httpd under its own name (busybox picks the applet from argv[0]), once on every address, once on loopback; both daemonize.
    const start = await world.run([
      'vm',
      'exec',
      'probe',
      '--',
      'sh',
      '-c',
      'ln -sf /banger/busybox /tmp/httpd && mkdir -p /tmp/www && /tmp/httpd -p 8080 -h /tmp/www && /tmp/httpd -p 127.0.0.1:9090 -h /tmp/www',
    ]);
    assert.equal(start.code, 0, start.stderr);
    await waitFor('the listeners to show up', async () => (await ports()).filter((p) => p.port === 8080 || p.port === 9090).length === 2, 120_000);

    const listed = await ports();
    const web = listed.find((p) => p.port === 8080);
    assert.equal(web?.proto, 'tcp');
    assert.equal(web.process, 'httpd');
    assert.ok(web.pid !== null && web.pid > 1, `a pid: ${JSON.stringify(web)}`);
    assert.equal(web.hostAddress, `${vm.ip}:8080`);
    assert.match(web.bindAddress, /^(0\.0\.0\.0|::)$/);

    const local = listed.find((p) => p.port === 9090);
    assert.deepEqual([local?.bindAddress, local?.process, local?.hostAddress], ['127.0.0.1', 'httpd', null], 'loopback only: the host cannot reach it');

    const ssh = listed.find((p) => p.proto === 'tcp' && p.port === 22);
    assert.equal(ssh?.hostAddress, `${vm.ip}:22`, 'the guest SSH server is listed too');
    assert.match(ssh.process ?? '', /^(sshd|dropbear)$/);

    const text = await world.run(['vm', 'ports', 'probe']);
    assert.match(text.stdout, /^PROTO\s+ADDRESS\s+PORT\s+PROCESS\s+PID\s+HOST ADDRESS$/m);
    assert.match(text.stdout, new RegExp(`^tcp\\s+\\S+\\s+8080\\s+httpd\\s+\\d+\\s+${vm.ip.replaceAll('.', '\\.')}:8080$`, 'm'));
  });

  test('vm stats reports the VMM RSS and guest memory within the VM size, and vm show carries the latest sample', async () => {
    let latest: VmStatsSample | null = null;
    await waitFor(
      'a sample with the guest part',
      async () => {
        const { stats } = await world.json<{ stats: VmStatsInfo[] }>(['vm', 'stats', 'probe']);
        latest = stats[0]?.latest ?? null;
        return latest?.guest !== null && latest?.guest !== undefined;
      },
      120_000,
    );
    const sample = latest as VmStatsSample | null;
    assert.ok(sample?.guest !== null && sample?.guest !== undefined);
    assert.ok(sample.vmm.rssBytes > 0, 'the VMM has resident memory');
    assert.ok(sample.vmm.cpuPercent >= 0);
    assert.ok(
      sample.guest.memTotalBytes > 0 && sample.guest.memTotalBytes <= MEMORY_MIB * 1024 * 1024,
      `MemTotal ${sample.guest.memTotalBytes} within ${MEMORY_MIB} MiB`,
    );
    assert.ok(sample.guest.memAvailableBytes <= sample.guest.memTotalBytes);
    assert.ok(sample.guest.uptimeSeconds > 0);
    assert.ok((sample.guest.diskTotalBytes ?? 0) > 0, 'the /root work disk has a size');

    const all = await world.json<{ stats: VmStatsInfo[] }>(['vm', 'stats']);
    assert.deepEqual(
      all.stats.map((s) => s.vm),
      ['probe'],
    );
    assert.ok(all.stats[0] !== undefined && all.stats[0].history.length >= 1);
    const shown = await world.json<VmInfo>(['vm', 'show', 'probe']);
    assert.ok(shown.stats !== null, 'vm show carries the latest sample');
    const table = await world.run(['vm', 'stats']);
    assert.match(table.stdout, /^NAME\s+CPU%\s+RSS\s+MEM\(used\/total\)\s+LOAD\s+DISK\s+UPTIME$/m);
    assert.match(table.stdout, /^probe\s+\d+\.\d%\s+\d/m);
  });

  test('vm stats --watch --json prints a line per sample until Ctrl-C, which ends it with status 0', async () => {
    const child = world.spawn(['vm', 'stats', 'probe', '--watch', '--json']);
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const closed = new Promise<number | null>((resolve) =>
      child.on('close', (code) => {
        resolve(code);
      }),
    );
    // The latest sample at once, then one per interval.
    await waitFor('two sample lines', () => out.split('\n').filter((l) => l !== '').length >= 2, 120_000);
    child.kill('SIGINT');
    assert.equal(await closed, 0, err);
    const lines = out
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as { vm: { id: string; name: string }; sample: VmStatsSample });
    for (const line of lines) {
      assert.deepEqual(line.vm, { id: vm.id, name: 'probe' });
      assert.ok(line.sample.vmm.rssBytes > 0);
    }
  });

  test('a daemon.events subscriber sees samples, then the VM go stopping -> stopped on vm stop', async () => {
    const client = await RpcClient.connect(world.layout.socketPath);
    const controller = new AbortController();
    const events: DaemonEvent[] = [];
    const done = client.subscribe((event) => events.push(event), { signal: controller.signal });
    done.catch(() => undefined);
    try {
      await waitFor('a vm.stats event', () => events.some((e) => e.kind === 'vm.stats' && e.vm.name === 'probe'), 120_000);
      const stopped = await world.run(['vm', 'stop', 'probe'], { timeoutMs: 300_000 });
      assert.equal(stopped.code, 0, stopped.stderr);
      await waitFor('the stopped event', () => events.some((e) => e.kind === 'vm.changed' && e.vm.name === 'probe' && e.vm.state === 'stopped'));
      const states = events.flatMap((e) => (e.kind === 'vm.changed' && e.vm.name === 'probe' ? [e.vm.state] : []));
      assert.deepEqual(states.slice(-2), ['stopping', 'stopped'], `states seen: ${states.join(', ')}`);
      assert.equal(states[0], 'running', 'the subscription began with the VM as it was');
    } finally {
      controller.abort();
      await done;
      client.close();
    }
    const { stats } = await world.json<{ stats: VmStatsInfo[] }>(['vm', 'stats', 'probe']);
    assert.deepEqual([stats[0]?.state, stats[0]?.latest, stats[0]?.history], ['stopped', null, []], 'a stopped VM keeps no history');
    assert.deepEqual((await world.json<{ stats: VmStatsInfo[] }>(['vm', 'stats'])).stats, [], 'nothing runs');
    await world.json<VmInfo>(['vm', 'delete', 'probe']);
  });
});
