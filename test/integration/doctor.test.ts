import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';

import Database from 'better-sqlite3';

import type { DoctorReport } from '../../src/doctor/report.js';
import { BangerWorld } from './harness.js';

async function doctor(world: BangerWorld): Promise<{ code: number | null; report: DoctorReport }> {
  const result = await world.run(['doctor', '--json']);
  return { code: result.code, report: JSON.parse(result.stdout) as DoctorReport };
}

function find(report: DoctorReport, id: string): DoctorReport['checks'][number] {
  const found = report.checks.find((c) => c.id === id);
  assert.ok(found !== undefined, `no ${id} check`);
  return found;
}

describe('banger doctor', () => {
  let world: BangerWorld;
  before(() => {
    world = new BangerWorld();
  });
  after(() => {
    world.close();
  });

  test('reports KVM on this machine as it really is, never a false pass', async () => {
    const { report } = await doctor(world);
    const kvm = find(report, 'kvm');
    const vendorModule = existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd');
    if (existsSync('/dev/kvm') && existsSync('/sys/module/kvm_pvm') && !vendorModule) {
      // The development and CI machines: PVM registers /dev/kvm but cannot run our guests.
      assert.equal(kvm.status, 'warn');
      assert.match(kvm.detail, /present but unusable/);
      assert.match(kvm.detail, /PVM/);
      assert.match(kvm.detail, /TCG/);
      const vmm = find(report, 'vmm');
      assert.equal(vmm.status, 'pass');
      assert.match(vmm.detail, /^vmm = auto: qemu \(.*\), no usable KVM \(pvm\): TCG emulation/);
    } else if (!existsSync('/dev/kvm')) {
      assert.equal(kvm.status, 'warn');
      assert.match(kvm.detail, /TCG/);
    } else {
      assert.equal(kvm.status, vendorModule ? 'pass' : 'warn');
    }
  });

  test('--json parses, summarises, and covers every area', async () => {
    const { report } = await doctor(world);
    const ids = report.checks.map((c) => c.id);
    for (const id of [
      'arch',
      'kvm',
      'vmm',
      'root-helper',
      'tun',
      'subids',
      'ssh-config',
      'tool.qemu',
      'tool.firecracker',
      'tool.busybox',
      'tool.ip',
      'tool.nft',
      'tool.mkfs.ext4',
      'tool.e2fsck',
      'tool.debugfs',
      'tool.ssh',
      'tool.git',
      'tool.zstd',
      'tool.xz',
      'tool.gpgv',
      'tool.mmdebstrap',
      'tool.dropbear',
      'debian-keyring',
      'runtime-dir',
      'state-dir',
      'store',
      'config',
      'vm-defaults',
    ]) {
      assert.ok(ids.includes(id), `missing check ${id}`);
    }
    const counted = { pass: 0, warn: 0, fail: 0 };
    for (const c of report.checks) counted[c.status]++;
    assert.deepEqual(report.summary, counted);
    assert.equal(report.ok, counted.fail === 0);
    assert.equal(find(report, 'arch').status, process.arch === 'x64' ? 'pass' : 'fail');
  });

  test('on a fresh host: store and dirs pass as "created on first daemon start", and doctor creates nothing', async () => {
    const { report } = await doctor(world);
    assert.equal(find(report, 'store').status, 'pass');
    assert.match(find(report, 'store').detail, /created on first daemon start/);
    assert.match(find(report, 'runtime-dir').detail, /created at 0700 when the daemon starts/);
    assert.equal(existsSync(world.layout.stateDir), false);
    assert.equal(existsSync(world.layout.runtimeDir), false);
    assert.deepEqual(readdirSync(world.layout.configDir), ['config.toml'], 'only the config the test wrote');
  });

  test('vm defaults show provenance', async () => {
    const { report } = await doctor(world);
    assert.match(
      find(report, 'vm-defaults').detail,
      /^\d+ vcpu \((config|auto|builtin)\) · \d+ MiB \((config|auto|builtin)\) · \d+[MGT] disk \((config|auto|builtin)\)/,
    );
    mkdirSync(world.layout.configDir, { recursive: true });
    world.writeConfig('[vm_defaults]\nvcpu = 3\n');
    const withConfig = await doctor(world);
    assert.match(find(withConfig.report, 'vm-defaults').detail, /^3 vcpu \(config\)/);
  });

  test('an invalid config fails its check (exit 1) and names the bad key', async () => {
    world.writeConfig('[vm_defaults]\ncpus = 3\n');
    const { code, report } = await doctor(world);
    assert.equal(code, 1);
    const config = find(report, 'config');
    assert.equal(config.status, 'fail');
    assert.match(config.detail, /unknown key "vm_defaults\.cpus"/);
    world.writeConfig('');
  });

  test('reads an existing store without changing it, and fails one from a newer banger', async () => {
    assert.equal((await world.run(['daemon', 'start'])).code, 0);
    assert.equal((await world.run(['daemon', 'stop'])).code, 0);
    const hash = (): string => createHash('sha256').update(readFileSync(world.layout.storePath)).digest('hex');
    const before = hash();
    const { report } = await doctor(world);
    assert.equal(find(report, 'store').status, 'pass');
    assert.match(find(report, 'store').detail, /schema \d+/);
    assert.equal(hash(), before, 'doctor left state.db byte-identical');

    const db = new Database(world.layout.storePath);
    db.prepare("INSERT INTO schema_migrations (id, name, applied_at) VALUES (9999, 'from-the-future', '2030-01-01T00:00:00Z')").run();
    db.close();
    const newer = await doctor(world);
    assert.equal(find(newer.report, 'store').status, 'fail');
    assert.match(find(newer.report, 'store').detail, /newer than this banger knows/);
  });
});
