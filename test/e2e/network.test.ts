import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';

import { nftTableName } from '../../src/root-helper/policy.js';
import type { PingResult, VmInfo } from '../../src/rpc/methods.js';
import { BangerWorld, processAlive, waitFor } from '../integration/harness.js';
import { TestNetns } from '../helpers/netns.js';
import { ensureTestUser } from '../helpers/test-user.js';

/**
 * VM networking for real, inside network namespaces the test creates (the
 * host's own network is untouched): banger runs as the ordinary test user in
 * namespace `host`, with its root helper (root) beside it; namespace `web`,
 * reached from `host` over a veth pair, plays the outside world with an HTTP
 * server. Covers names (<name>.vm), isolation, the shared network, NAT on and
 * off live, a daemon killed mid-flight, and what is left after it all.
 */
describe('VM networking in a network namespace', { timeout: 1_800_000 }, () => {
  let hostNs: TestNetns;
  let webNs: TestNetns;
  let web: ChildProcess | undefined;
  let world: BangerWorld;
  const OUTSIDE = 'http://192.168.77.2:8080/';

  before(async () => {
    hostNs = new TestNetns('bnh');
    webNs = new TestNetns('bnw');
    const [veth, peer] = [`v${hostNs.name.slice(-6)}`, `w${hostNs.name.slice(-6)}`];
    hostNs.run('ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', peer, 'netns', webNs.name);
    hostNs.run('ip', 'addr', 'add', '192.168.77.1/24', 'dev', veth);
    hostNs.run('ip', 'link', 'set', veth, 'up');
    webNs.run('ip', 'addr', 'add', '192.168.77.2/24', 'dev', peer);
    webNs.run('ip', 'link', 'set', peer, 'up');
    web = spawn('ip', [
      'netns',
      'exec',
      webNs.name,
      process.execPath,
      '-e',
      "require('http').createServer((q, r) => r.end('outside ok\\n')).listen(8080, '192.168.77.2')",
    ]);
    world = await BangerWorld.create({ sharedDownloads: true, network: true, user: ensureTestUser(), netns: hostNs.name });
    await world.pullOutsideNetns();
  });
  after(async () => {
    world.close();
    web?.kill();
    await new Promise((resolve) => setTimeout(resolve, 200));
    hostNs.remove();
    webNs.remove();
  });

  const exec = (vm: string, script: string): Promise<{ code: number | null; stdout: string; stderr: string }> =>
    world.run(['vm', 'exec', vm, '--', 'sh', '-c', script]);
  const fetchFrom = (vm: string, url: string): Promise<{ code: number | null; stdout: string; stderr: string }> => exec(vm, `curl -s --max-time 4 ${url}`);
  const serve = async (vm: string): Promise<void> => {
    const started = await exec(vm, `mkdir -p /tmp/www && echo "hello from ${vm}" > /tmp/www/index.html && /banger/busybox httpd -p 8000 -h /tmp/www`);
    assert.equal(started.code, 0, started.stderr);
  };
  const table = (): string => nftTableName(world.bridge ?? '');
  const natGuests = (): string => hostNs.tryRun('nft', 'list', 'set', 'ip', table(), 'nat_guests') ?? '';

  test('doctor, run as the user, finds the root helper: reachable, same build, this bridge and subnet', async () => {
    const report = JSON.parse((await world.run(['doctor', '--json'])).stdout) as { checks: { id: string; status: string; detail: string }[] };
    const helper = report.checks.find((c) => c.id === 'root-helper');
    assert.equal(helper?.status, 'pass', helper?.detail);
    assert.match(helper.detail, new RegExp(`bridge ${world.bridge ?? ''}`));
    assert.equal(report.checks.find((c) => c.id === 'tun')?.status, 'pass');
  });

  test('two VMs on the shared network resolve and reach each other as <name>.vm', async () => {
    const results = await Promise.all(
      ['s1', 's2'].map((name) => world.run(['vm', 'create', '--name', name, '--network', 'shared', '--json'], { timeoutMs: 900_000 })),
    );
    for (const result of results) assert.equal(result.code, 0, result.stderr);
    const s2 = JSON.parse(results[1]?.stdout ?? '{}') as VmInfo;
    await serve('s2');
    const resolved = await exec('s1', 'getent hosts s2.vm');
    assert.equal(resolved.stdout.trim().split(/\s+/)[0], s2.ip, 'banger DNS answers s2.vm');
    const missing = await exec('s1', 'getent hosts nosuch.vm');
    assert.notEqual(missing.code, 0, 'an unknown .vm name does not resolve');
    const fetched = await fetchFrom('s1', 'http://s2.vm:8000/');
    assert.equal(fetched.stdout.trim(), 'hello from s2', fetched.stderr);
  });

  test('two VMs on the default isolated network cannot reach each other (nor a shared one)', async () => {
    for (const name of ['i1', 'i2']) await world.json<VmInfo>(['vm', 'create', '--name', name], { timeoutMs: 300_000 });
    await serve('i2');
    const i2 = await world.json<VmInfo>(['vm', 'show', 'i2']);
    assert.equal((await exec('i1', 'getent hosts i2.vm')).stdout.trim().split(/\s+/)[0], i2.ip, 'names still resolve');
    assert.notEqual((await fetchFrom('i1', 'http://i2.vm:8000/')).code, 0, 'i1 cannot reach i2');
    assert.notEqual((await fetchFrom('i1', 'http://s2.vm:8000/')).code, 0, 'an isolated VM cannot reach a shared one');
    assert.notEqual((await fetchFrom('s1', 'http://i2.vm:8000/')).code, 0, 'a shared VM cannot reach an isolated one');
    assert.notEqual((await fetchFrom('i1', OUTSIDE)).code, 0, 'without NAT the guest reaches nothing beyond the host');
    // A guest that routes through the host to get around the isolation gets nowhere either.
    const i1 = await world.json<VmInfo>(['vm', 'show', 'i1']);
    const gateway = i1.ip.replace(/\.\d+$/, '.1');
    assert.equal((await exec('i1', `ip route add ${i2.ip}/32 via ${gateway}`)).code, 0);
    assert.notEqual((await fetchFrom('i1', `http://${i2.ip}:8000/`)).code, 0, 'no hairpin routing between guests');
  });

  test('--nat reaches the outside; vm set --no-nat cuts it off at once, --nat restores it, without a restart', async () => {
    const n1 = await world.json<VmInfo>(['vm', 'create', '--name', 'n1', '--nat'], { timeoutMs: 300_000 });
    assert.equal(n1.spec.nat, true);
    const first = await fetchFrom('n1', OUTSIDE);
    assert.equal(first.stdout.trim(), 'outside ok', first.stderr);
    assert.match(natGuests(), new RegExp(n1.ip.replaceAll('.', '\\.')));

    // A guest without NAT cannot borrow n1's by sending as n1: a spoofed source never leaves its tap.
    assert.equal((await exec('i1', `ip addr add ${n1.ip}/32 dev eth0`)).code, 0);
    assert.notEqual((await exec('i1', `curl -s --max-time 4 --interface ${n1.ip} ${OUTSIDE}`)).code, 0, 'spoofing a NAT guest gets nothing');
    assert.equal((await fetchFrom('n1', OUTSIDE)).stdout.trim(), 'outside ok', 'and n1 itself is unaffected');

    const off = await world.json<VmInfo>(['vm', 'set', 'n1', '--no-nat']);
    assert.equal(off.spec.nat, false);
    assert.equal(off.pid, n1.pid, 'the VM was not restarted');
    assert.notEqual((await fetchFrom('n1', OUTSIDE)).code, 0, 'NAT off: the outside is unreachable');
    assert.doesNotMatch(natGuests(), new RegExp(n1.ip.replaceAll('.', '\\.')));

    await world.json<VmInfo>(['vm', 'set', 'n1', '--nat']);
    assert.equal((await fetchFrom('n1', OUTSIDE)).stdout.trim(), 'outside ok');
  });

  test('kill -9 of the daemon with NAT VMs running, one VMM killed: the live VM keeps NAT and its name, the dead one leaves nothing', async () => {
    const n2 = await world.json<VmInfo>(['vm', 'create', '--name', 'n2', '--nat'], { timeoutMs: 300_000 });
    assert.match(natGuests(), new RegExp(n2.ip.replaceAll('.', '\\.')));
    const daemon = (await world.json<PingResult>(['daemon', 'status'])).pid;
    process.kill(daemon, 'SIGKILL');
    await waitFor('the daemon to die', () => !processAlive(daemon));
    assert.ok(n2.pid !== null);
    process.kill(n2.pid, 'SIGKILL');
    await waitFor('n2 to die', () => !processAlive(n2.pid ?? 0));

    // The next command that needs the daemon starts a new one (daemon status alone would not).
    assert.equal((await world.json<VmInfo>(['vm', 'show', 'n2'])).state, 'stopped');
    const status = await world.json<PingResult>(['daemon', 'status']);
    assert.equal(status.pid !== daemon && typeof status.pid === 'number', true, 'a new daemon');
    assert.doesNotMatch(natGuests(), new RegExp(`${n2.ip.replaceAll('.', '\\.')}\\b`), "the dead VM's NAT is gone");
    const n1 = await world.json<VmInfo>(['vm', 'show', 'n1']);
    assert.match(natGuests(), new RegExp(n1.ip.replaceAll('.', '\\.')), 'the live VM keeps NAT');
    assert.equal((await fetchFrom('n1', OUTSIDE)).stdout.trim(), 'outside ok');
    await waitFor('DNS back on the bridge', async () => (await exec('s1', 'getent hosts n1.vm')).stdout.trim().startsWith(n1.ip), 30_000);
    const pool = (await world.json<PingResult>(['daemon', 'status'])).network?.pool;
    const taps = world.links().filter((link) => link !== world.bridge);
    assert.equal(taps.length, (pool?.idle.length ?? 0) + (pool?.inUse.length ?? 0), "the dead VM's tap was adopted by the pool or removed");
  });

  test('after deleting every VM and stopping the daemon: no NAT or shared rule, no tap beyond the pool, resolver routing reverted', async () => {
    const { vms } = await world.json<{ vms: VmInfo[] }>(['vm', 'list']);
    for (const vm of vms) await world.json<VmInfo>(['vm', 'delete', vm.name]);
    const pool = (await world.json<PingResult>(['daemon', 'status'])).network?.pool;
    assert.ok(pool !== undefined);
    assert.deepEqual(pool.inUse, []);
    assert.equal((await world.run(['daemon', 'stop'])).code, 0);
    assert.doesNotMatch(natGuests(), /elements/, 'the NAT set is empty');
    assert.doesNotMatch(hostNs.tryRun('nft', 'list', 'set', 'bridge', table(), 'shared') ?? '', /elements/, 'the shared set is empty');
    assert.doesNotMatch(hostNs.tryRun('nft', 'list', 'set', 'bridge', table(), 'bound') ?? '', /elements/, 'no tap is bound to a VM');
    const taps = world.links().filter((link) => link !== world.bridge);
    assert.deepEqual(taps.sort(), [...pool.idle].sort(), 'only the idle pool is left');
    assert.ok(taps.length <= 2);
    // Resolver routing: asked for at bridge setup; where it took effect (systemd-resolved), reverted at stop.
    const ops = (world.helper?.logLines() ?? []).map((line) => line.op);
    assert.ok(ops.includes('resolver.route'));
    const routed = (world.helper?.logLines() ?? []).some((line) => line.op === 'resolver.route' && line.msg === 'done');
    if (routed && hostNs.tryRun('resolvectl', 'status') !== undefined) assert.ok(ops.includes('resolver.revert'));
    // Every privileged change came through the helper: the user's daemon never ran as root.
    assert.ok(ops.includes('tap.create') && ops.includes('nat.set') && ops.includes('tap.attach'));
  });
});
