import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { HelperClient } from '../../src/root-helper/client.js';
import { nftTableName } from '../../src/root-helper/policy.js';
import { BangerError } from '../../src/rpc/errors.js';
import { TestNetns } from '../helpers/netns.js';
import { TestRootHelper } from '../helpers/root-helper.js';
import { ensureTestUser, type TestUser } from '../helpers/test-user.js';

/**
 * The real root helper (dist/root-helper.cjs, as root) inside a network
 * namespace: its operations change the namespace's network for real, its
 * allow-list refuses everything else over the wire, and its socket lets in
 * only the user it belongs to.
 */
describe('root helper', { timeout: 120_000 }, () => {
  let netns: TestNetns;
  let helper: TestRootHelper;
  let user: TestUser;
  let client: HelperClient;
  const dir = mkdtempSync(join(tmpdir(), 'banger-helper-'));
  const bridge = 'bhtest0';
  const table = nftTableName(bridge);

  before(async () => {
    user = ensureTestUser();
    netns = new TestNetns('bh');
    helper = await TestRootHelper.start(dir, [{ uid: user.uid, gid: user.gid, bridge, subnet: '10.213.0.0/24' }], { netns: netns.name });
    client = new HelperClient(helper.socketFor(user.uid));
  });
  after(async () => {
    client.close();
    await helper.stop();
    netns.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  async function refusedWith(call: Promise<unknown>, pattern: RegExp): Promise<void> {
    await assert.rejects(call, (error: unknown) => error instanceof BangerError && error.code === 'ERR_HELPER_REFUSED' && pattern.test(error.message));
  }

  test("the socket is the user's alone (0600), and another user cannot connect", () => {
    const socket = helper.socketFor(user.uid);
    assert.equal(statSync(socket).uid, user.uid);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    const connect = `require('net').connect(${JSON.stringify(socket)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(1)})`;
    const stranger = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath, '-e', connect], { encoding: 'utf8' });
    assert.equal(stranger.stdout.trim(), 'EACCES', 'nobody is refused by the socket permissions');
    const owner = spawnSync('setpriv', [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--', process.execPath, '-e', connect], {
      encoding: 'utf8',
    });
    assert.equal(owner.stdout.trim(), 'connected');
  });

  test('hello names the build and the policy of the socket', async () => {
    const hello = await client.hello();
    assert.equal(hello.uid, user.uid);
    assert.equal(hello.bridge, bridge);
    assert.equal(hello.subnet, '10.213.0.0/24');
    assert.match(hello.buildId, /^[0-9a-f]{16}$/);
  });

  test('bridge, tap, shared network and NAT change the namespace for real, and state reports them', async () => {
    await client.ensureBridge(bridge, 42069);
    assert.match(netns.run('ip', '-4', '-o', 'addr', 'show', 'dev', bridge), /inet 10\.213\.0\.1\/24/);
    await client.ensureBridge(bridge, 42069); // idempotent
    assert.match(netns.run('nft', 'list', 'table', 'ip', table), /udp dport 53 redirect to :42069/);

    await client.createTap('bhtest0p0', user.uid);
    assert.match(netns.run('cat', '/sys/class/net/bhtest0p0/owner'), new RegExp(`^${user.uid}$`, 'm'));
    assert.match(netns.run('bridge', '-d', 'link', 'show', 'dev', 'bhtest0p0'), /master bhtest0.*isolated on/s);
    await client.attachTap('bhtest0p0', '10.213.0.2', '52:54:ba:00:00:01', 'shared');
    assert.match(netns.run('bridge', '-d', 'link', 'show', 'dev', 'bhtest0p0'), /isolated off/);
    assert.match(netns.run('nft', 'list', 'set', 'bridge', table, 'bound'), /"bhtest0p0" \. 52:54:ba:00:00:01 \. 10\.213\.0\.2/);
    await client.attachTap('bhtest0p0', '10.213.0.2', '52:54:ba:00:00:01', 'shared'); // idempotent: still one binding
    assert.equal(netns.run('nft', 'list', 'set', 'bridge', table, 'bound').match(/bhtest0p0/g)?.length, 1);
    await client.setNat('10.213.0.2', true);
    await client.enableForwarding();
    assert.equal(netns.run('cat', '/proc/sys/net/ipv4/ip_forward').trim(), '1');
    assert.deepEqual(await client.state(), { taps: ['bhtest0p0'], natGuests: ['10.213.0.2'] });
    assert.match(netns.run('nft', 'list', 'set', 'bridge', table, 'shared'), /"bhtest0p0"/);

    await client.setNat('10.213.0.2', false);
    await client.setNat('10.213.0.2', false); // idempotent
    await client.releaseTap('bhtest0p0');
    assert.match(netns.run('bridge', '-d', 'link', 'show', 'dev', 'bhtest0p0'), /isolated on/);
    assert.doesNotMatch(netns.run('nft', 'list', 'set', 'bridge', table, 'bound'), /bhtest0p0/);
    await client.deleteTap('bhtest0p0');
    assert.deepEqual(await client.state(), { taps: [], natGuests: [] });
    const routing = await client.routeResolver(bridge, 42069);
    assert.equal(typeof routing.routed, 'boolean');
  });

  test('over the wire, foreign names, addresses, uids and unknown operations are refused and change nothing', async () => {
    netns.run('ip', 'tuntap', 'add', 'dev', 'bhtest0p9', 'mode', 'tap', 'user', '4242');
    await refusedWith(client.deleteTap('bhtest0p9'), /is not a tap owned by uid/);
    assert.ok(netns.links().includes('bhtest0p9'), "another user's tap survives");
    await refusedWith(client.createTap('eth0', user.uid), /is not a tap of bhtest0/);
    await refusedWith(client.createTap('bhtest0p1', 0), /is not the caller's/);
    await refusedWith(client.ensureBridge('lo', 42069), /is not yours/);
    await refusedWith(client.setNat('8.8.8.8', true), /not a guest address/);
    await refusedWith(client.setNat('10.213.0.1', true), /not a guest address/);
    await refusedWith(client.createTap('bhtest0p1;reboot', user.uid), /is not a tap of bhtest0/);
    // Lines that are not request objects close that connection, and the helper goes on serving.
    for (const junk of ['null', '[]', '42', '{"id": 1, "op": "hello", "args": {}', 'x'.repeat(20_000)]) {
      const closed = await new Promise<boolean>((resolve) => {
        const socket = connect(helper.socketFor(user.uid));
        socket.on('error', () => {
          resolve(true);
        });
        socket.on('close', () => {
          resolve(true);
        });
        socket.write(`${junk}\n`);
        setTimeout(() => {
          socket.destroy();
          resolve(false);
        }, 2000);
      });
      assert.ok(closed, `the helper hung up on ${junk.slice(0, 20)}`);
    }
    assert.equal((await client.hello()).uid, user.uid, 'still serving');
    // An operation the helper does not have, sent raw.
    const raw = client as unknown as { call: (op: string, args: Record<string, unknown>) => Promise<unknown> };
    await refusedWith(raw.call('exec', { command: 'id' }), /unknown operation "exec"/);
    assert.deepEqual((await client.state()).natGuests, []);
    assert.ok(!netns.links().includes('bhtest0p1'));
    const refusals = helper.logLines().filter((line) => line.msg === 'refused or failed');
    assert.ok(refusals.length >= 7, 'each refusal is logged');
    assert.ok(refusals.every((line) => line.uid === user.uid && typeof line.op === 'string'));
  });

  test('an interface the helper did not make is never taken for the bridge, nor deleted', async () => {
    await client.deleteBridge(bridge);
    netns.run('ip', 'link', 'add', bridge, 'type', 'bridge'); // a bridge of someone else's, under our name
    try {
      await refusedWith(client.ensureBridge(bridge, 42069), /exists and is not a bridge banger made/);
      await refusedWith(client.deleteBridge(bridge), /exists and is not a bridge banger made/);
      assert.ok(netns.links().includes(bridge), 'it is left alone');
    } finally {
      netns.run('ip', 'link', 'del', bridge);
    }
    await client.ensureBridge(bridge, 42069);
  });

  test('bridge.delete removes the bridge, its taps and banger tables', async () => {
    await client.createTap('bhtest0p3', user.uid);
    await client.deleteBridge(bridge);
    assert.ok(!netns.links().includes(bridge));
    assert.ok(!netns.links().includes('bhtest0p3'));
    assert.equal(netns.tryRun('nft', 'list', 'table', 'ip', table), undefined);
  });
});
