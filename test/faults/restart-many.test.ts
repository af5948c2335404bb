import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import { nftTableName } from '../../src/root-helper/policy.js';
import { slotNetwork } from '../../src/services/network/slot.js';

import type { VmInfo } from '../../src/rpc/methods.js';
import type { BangerWorld } from '../integration/harness.js';
import { assertNoLeaks, findLeaks } from '../helpers/leaks.js';
import { createVm, faultWorld, listVms, pullImage } from './common.js';

const COUNT = 10;
/** VMs booted at once while setting up (two cores under TCG). */
const BATCH = 5;

/**
 * The daemon restarted (kill -9, then a graceful stop) with ten VMs running:
 * every one is still managed by the new daemon (same VMM, `vm exec` works)
 * and nothing is orphaned. First, a self-test of the leak checker the whole
 * fault suite relies on. One world (as root, its own bridge and subnet).
 */
describe('daemon restart with ten VMs running', { timeout: 600_000 }, () => {
  let world: BangerWorld;
  before(async () => {
    world = await faultWorld();
    await pullImage(world);
  });
  after(() => {
    world.close();
    world.removeNftTables();
  });

  test('the leak checker sees each kind of leak it looks for (so that a clean check means something)', async () => {
    const vm = await createVm(world, 'probe');
    await assertNoLeaks(world, 'one VM running');
    const bridge = world.bridge ?? '';
    const subnet = world.subnet ?? '';
    const config = { bridge, subnet };
    const table = nftTableName(bridge);
    const ghost = slotNetwork(config, 200);
    const fakeQemu = join(world.root, 'qemu-system-fake');
    copyFileSync('/bin/sleep', fakeQemu);
    const fake = spawn(fakeQemu, ['600'], { stdio: 'ignore' });
    const injected = {
      tap: `${bridge}p99`,
      runtimeDir: join(world.layout.runtimeDir, 'vms', 'feedfacefeedface'),
      vmDir: join(world.layout.vmsDir, 'deadbeefdeadbeef'),
      staging: join(world.layout.imagesDir, '.staging-crashed'),
    };
    const knownHosts = readFileSync(world.layout.knownHosts, 'utf8');
    const sshConfig = readFileSync(world.layout.sshConfig, 'utf8');
    try {
      execFileSync('ip', ['tuntap', 'add', 'dev', injected.tap, 'mode', 'tap']);
      world.nft('add', 'element', 'bridge', table, 'bound', `{ "${bridge}p98" . ${ghost.mac} . ${ghost.guestIp} }`);
      world.nft('add', 'element', 'ip', table, 'nat_guests', `{ ${ghost.guestIp} }`);
      for (const dir of [injected.runtimeDir, injected.vmDir, injected.staging]) mkdirSync(dir, { recursive: true });
      appendFileSync(world.layout.knownHosts, `${ghost.guestIp},ghost,ghost.vm ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGhvc3Q\n`);
      appendFileSync(world.layout.sshConfig, `Host ghost.vm\n  HostName ${ghost.guestIp}\n`);
      const db = new Database(world.layout.storePath);
      db.prepare(
        "INSERT INTO vms (id, name, state, image_id, slot, spec, created_at, updated_at) SELECT '0123456789abcdef', 'ghost', 'starting', image_id, 201, spec, created_at, updated_at FROM vms WHERE name = 'probe'",
      ).run();
      db.close();

      const details = (await findLeaks(world)).map((leak) => `[${leak.kind}] ${leak.detail}`);
      const expect = (pattern: RegExp, what: string): void => {
        assert.ok(
          details.some((d) => pattern.test(d)),
          `the checker reports ${what}; it reported:\n${details.join('\n')}`,
        );
      };
      expect(new RegExp(`^\\[qemu\\] qemu pid ${fake.pid ?? 0} `), 'a QEMU of no VM');
      expect(new RegExp(`^\\[tap\\] tap ${injected.tap} `), 'a tap of no VM');
      expect(new RegExp(`^\\[nft\\] .*set bound: element ${bridge}p98 `), 'a bound element of no VM');
      expect(new RegExp(`^\\[nft\\] .*set nat_guests: ${ghost.guestIp.replaceAll('.', '\\.')} `), 'a NAT element of no VM');
      expect(/^\[runtime-dir\] .*feedfacefeedface/, 'a runtime dir of no VM');
      expect(/^\[vm-dir\] .*deadbeefdeadbeef has no row/, 'a VM dir without a row');
      expect(/^\[staging\] .*\.staging-crashed/, 'a staging dir');
      expect(/^\[known-hosts\] entry for .*ghost/, 'a known_hosts entry of no VM');
      expect(/^\[ssh-config\] ssh_config lists ghost\.vm/, 'an ssh_config host of no running VM');
      expect(/^\[vm-row\] VM ghost .*left 'starting'/, 'a row left in a transient state');
      expect(/^\[vm-row\] VM ghost .*lacks upper\.ext4 and work\.ext4/, 'a row of a VM that was never finished');
      assert.ok(!details.some((d) => d.includes(`qemu pid ${vm.pid ?? 0} `)), "the VM's own QEMU is not a leak");
    } finally {
      fake.kill('SIGKILL');
      spawnSync('ip', ['link', 'del', injected.tap]);
      world.nft('delete', 'element', 'bridge', table, 'bound', `{ "${bridge}p98" . ${ghost.mac} . ${ghost.guestIp} }`);
      world.nft('delete', 'element', 'ip', table, 'nat_guests', `{ ${ghost.guestIp} }`);
      for (const dir of [injected.runtimeDir, injected.vmDir, injected.staging]) rmSync(dir, { recursive: true, force: true });
      writeFileSync(world.layout.knownHosts, knownHosts);
      writeFileSync(world.layout.sshConfig, sshConfig);
      const db = new Database(world.layout.storePath);
      db.prepare("DELETE FROM vms WHERE id = '0123456789abcdef'").run();
      db.close();
    }
    await assertNoLeaks(world, 'with the injected leaks removed again');
    await world.json<VmInfo>(['vm', 'delete', 'probe']);
    await assertNoLeaks(world, 'after deleting the VM');
  });

  test('kill -9 and a graceful restart of the daemon: all ten VMs stay running, managed and usable; no orphans', async () => {
    const names = Array.from({ length: COUNT }, (_, i) => `many-${i}`);
    for (let i = 0; i < names.length; i += BATCH) await Promise.all(names.slice(i, i + BATCH).map((name) => createVm(world, name)));
    const pids = new Map((await listVms(world)).map((vm) => [vm.name, vm.pid]));
    await assertNoLeaks(world, `with ${COUNT} VMs running`);

    for (const how of ['kill -9', 'daemon stop'] as const) {
      const old = await world.runningDaemonPid();
      if (how === 'kill -9') await world.killDaemon();
      else await world.stopDaemon();
      const vms = await listVms(world);
      const fresh = await world.runningDaemonPid();
      assert.ok(fresh !== undefined && fresh !== old, 'a new daemon serves');
      for (const name of names) {
        const vm = vms.find((v) => v.name === name);
        assert.equal(vm?.state, 'running', `after ${how}: ${name} is running (last error: ${vm?.lastError ?? 'none'})`);
        assert.equal(vm.pid, pids.get(name), `after ${how}: ${name} keeps its VMM`);
      }
      const execs = await Promise.all(names.map((name) => world.run(['vm', 'exec', name, '--', 'cat', '/etc/hostname'])));
      execs.forEach((result, i) => {
        assert.equal(result.code, 0, `after ${how}: vm exec ${names[i] ?? ''}: ${result.stderr}`);
        assert.equal(result.stdout.trim(), names[i], 'each name reaches its own guest');
      });
      await assertNoLeaks(world, `after ${how}`);
    }

    const deleted = await Promise.all(names.map((name) => world.run(['vm', 'delete', name, '--json'])));
    for (const result of deleted) assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await listVms(world), [] as VmInfo[]);
    assert.deepEqual(world.vmmPids(), []);
    await assertNoLeaks(world, 'after deleting them all');
  });
});
