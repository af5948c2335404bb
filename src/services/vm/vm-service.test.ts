import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import * as names from '../../config/filenames.js';
import { pidAlive, processMatches } from '../../host/process.js';
import { BangerError } from '../../rpc/errors.js';
import type { Store } from '../../store/database.js';
import type { KernelRecord } from '../../store/kernels-repo.js';
import { VmsRepo, type VmSpec } from '../../store/vms-repo.js';
import { DriverRegistry } from '../../vmm/registry.js';
import {
  addImageRow,
  capturingLogger,
  FakeGuests,
  fakeImage,
  FakeImages,
  FakeNetwork,
  FakeProvisioner,
  FakeVmm,
  opContext,
  spawnHolder,
  storeWithImages,
  tempDir,
} from '../../../test/helpers/fake-vm-parts.js';
import { VmRuntime } from './vm-runtime.js';
import { VmService } from './vm-service.js';

const SPEC: VmSpec = { vcpu: 1, memoryMiB: 256, diskSizeBytes: 1024 ** 3, init: 'minimal', nat: false, network: 'isolated' };
const HOST = { cpus: 4, memoryBytes: 8 * 1024 ** 3 };
const kernel = { id: 'kernel-1', name: 'k', spec: {} } as unknown as KernelRecord;

const roots: string[] = [];
const pids: number[] = [];
after(() => {
  for (const pid of pids) if (pidAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

/** One daemon's worth of VmService over a state dir; `restart()` gives the next daemon over the same dir and store. */
class World {
  readonly root = tempDir('banger-vmsvc-');
  readonly store: Store;
  readonly images: FakeImages;
  readonly network = new FakeNetwork();
  readonly guests = new FakeGuests();
  readonly provisioner = new FakeProvisioner();
  readonly logger = capturingLogger();
  vmm: FakeVmm;
  service: VmService;

  constructor(options: { images?: string[]; catalog?: string[] } = {}) {
    roots.push(this.root);
    const images = (options.images ?? ['debian-bookworm']).map((name) => fakeImage(`img-${name}`, name));
    this.store = storeWithImages(this.root, images);
    this.images = new FakeImages(images, options.catalog ?? []);
    this.vmm = new FakeVmm('qemu');
    this.service = this.build(new DriverRegistry(this.vmm));
  }

  build(drivers: DriverRegistry): VmService {
    return new VmService({
      layout: {
        vmsDir: join(this.root, 'vms'),
        runtimeDir: join(this.root, 'run'),
        sshKey: join(this.root, 'key'),
        knownHosts: join(this.root, 'known_hosts'),
      },
      vms: new VmsRepo(this.store),
      images: {
        byId: (id) => this.images.byId(id),
        list: () => this.images.list(),
        find: (ref) => this.images.find(ref),
        inCatalog: (name) => this.images.inCatalog(name),
        findByReference: () => undefined,
        pull: (name) => {
          const pulled = this.images.pull(name);
          void pulled.then(({ image }) => {
            addImageRow(this.store, image);
          });
          return pulled;
        },
      },
      kernels: { byId: () => kernel, files: () => ({ dir: '/k', vmlinux: '/k/vmlinux', initramfs: '/k/initramfs' }), ensureCurrentInitramfs: (k) => k },
      runtime: new VmRuntime(drivers),
      provisioner: this.provisioner,
      network: this.network,
      guests: this.guests,
      networkConfig: { bridge: 'fakebr0', subnet: '172.30.0.0/24' },
      defaultImage: 'debian-bookworm',
      host: HOST,
    });
  }

  /** A new daemon over the same state (in-memory caches gone), reconciled as at startup. */
  async restart(drivers = new DriverRegistry(this.vmm)): Promise<ReturnType<VmService['reconcile']>> {
    this.service = this.build(drivers);
    return this.service.reconcile(this.logger.log);
  }

  ctx(): ReturnType<typeof opContext> {
    return opContext(this.logger.log);
  }

  track(): void {
    for (const handle of this.vmm.started) pids.push(handle.pid);
  }

  rows(): { name: string; state: string }[] {
    return this.store.db.prepare('SELECT name, state FROM vms ORDER BY name').all() as { name: string; state: string }[];
  }
}

describe('VmService with a fake VMM', { timeout: 60_000 }, () => {
  test('create boots the VM and records its handles atomically', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'alpha', spec: SPEC }, w.ctx());
    w.track();
    assert.equal(vm.state, 'running');
    assert.equal(w.service.alive(vm), true);
    const dir = w.service.vmDir(vm);
    const handles = JSON.parse(readFileSync(join(dir, names.VM_HANDLES), 'utf8')) as { vmm: { pid: number }; tap: string };
    assert.equal(handles.vmm.pid, w.vmm.started[0]?.pid);
    assert.equal(handles.tap, 'faketap0');
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.includes('.tmp')),
      [],
    );
  });

  test('a VMM that fails to start is rolled back: no row, no files, tap released', async () => {
    const w = new World();
    w.vmm.failNextStart = new BangerError('ERR_VMM_FAILED', 'qemu exited');
    await assert.rejects(w.service.create({ name: 'beta', spec: SPEC }, w.ctx()), { code: 'ERR_VMM_FAILED' });
    assert.deepEqual(w.rows(), []);
    assert.equal(existsSync(join(w.root, 'vms')) ? readdirSync(join(w.root, 'vms')).length : 0, 0);
    assert.equal(w.network.attached.size, 0);
    assert.equal(w.network.detached.length, 1);
  });

  test('a VM that dies while booting fails with its console lines, and a failed create points at no logs', async () => {
    const w = new World();
    w.guests.dieOnBoot = async (vmId) => {
      const dir = join(w.root, 'vms', vmId);
      writeFileSync(join(dir, names.VM_CONSOLE_LOG), 'Linux version 6.1\nKernel panic - not syncing: Out of memory\n');
      const started = w.vmm.started.at(-1);
      if (started !== undefined) await w.vmm.kill(started);
    };
    await assert.rejects(w.service.create({ name: 'gamma', spec: SPEC }, w.ctx()), (error: unknown) => {
      assert.ok(error instanceof BangerError);
      assert.equal(error.code, 'ERR_VM_START_FAILED');
      assert.match(error.message, /Kernel panic - not syncing: Out of memory/);
      assert.equal(error.hint, undefined, 'the VM was rolled back: no `vm logs` to point at');
      return true;
    });
    assert.deepEqual(w.rows(), []);
  });

  test('a start that fails keeps the VM, stopped, with the reason and a logs hint', async () => {
    const w = new World();
    await w.service.create({ name: 'delta', spec: SPEC, noStart: true }, w.ctx());
    w.guests.dieOnBoot = async () => {
      const started = w.vmm.started.at(-1);
      if (started !== undefined) await w.vmm.kill(started);
    };
    await assert.rejects(w.service.start('delta', w.ctx()), (error: unknown) => {
      assert.ok(error instanceof BangerError);
      assert.match(error.message, /stopped while booting \(nothing on its console\)/);
      assert.match(error.hint ?? '', /banger vm logs delta/);
      return true;
    });
    assert.deepEqual(w.rows(), [{ name: 'delta', state: 'stopped' }]);
  });

  test('more memory or vCPUs than the host has are refused before anything is created', async () => {
    const w = new World();
    await assert.rejects(w.service.create({ name: 'huge', spec: { ...SPEC, memoryMiB: 1024 * 1024 } }, w.ctx()), { code: 'ERR_HOST_CAPACITY' });
    await assert.rejects(w.service.create({ name: 'wide', spec: { ...SPEC, vcpu: 5 } }, w.ctx()), { code: 'ERR_HOST_CAPACITY' });
    assert.deepEqual(w.rows(), []);
    assert.equal(w.vmm.started.length, 0);
    await w.service.create({ name: 'small', spec: SPEC, noStart: true }, w.ctx());
    await assert.rejects(w.service.set('small', { memoryMiB: 1024 * 1024 }), { code: 'ERR_HOST_CAPACITY' });
  });

  test('concurrent sets on one VM keep every change', async () => {
    const w = new World();
    await w.service.create({ name: 'eps', spec: SPEC, noStart: true }, w.ctx());
    await Promise.all([w.service.set('eps', { vcpu: 2 }), w.service.set('eps', { memoryMiB: 512 }), w.service.set('eps', { diskSizeBytes: 2 * 1024 ** 3 })]);
    const vm = w.service.find('eps');
    assert.equal(vm.spec.vcpu, 2);
    assert.equal(vm.spec.memoryMiB, 512);
    assert.equal(vm.spec.diskSizeBytes, 2 * 1024 ** 3);
  });

  test('a catalog image name is never prefix-matched to another image', async () => {
    const w = new World({ images: ['debian-bookworm-dev'], catalog: ['debian-bookworm'] });
    const vm = await w.service.create({ name: 'zeta', image: 'debian-bookworm', spec: SPEC, noStart: true }, w.ctx());
    assert.deepEqual(w.images.pulled, ['debian-bookworm']);
    assert.equal(w.images.byId(vm.imageId)?.name, 'debian-bookworm');
    // A typed prefix that is not a catalog name still resolves to the one image it matches.
    const typed = await w.service.create({ name: 'eta', image: 'debian-bookworm-d', spec: SPEC, noStart: true }, w.ctx());
    assert.equal(w.images.byId(typed.imageId)?.name, 'debian-bookworm-dev');
  });
});

/** Whether process `pid` has `path` open (one of its /proc fd links points at it). */
function holdsOpen(pid: number, path: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === path;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

describe('VmService reconcile with a fake VMM', { timeout: 60_000 }, () => {
  test('a running VM with a corrupt handles.json is found from the OS, kept, and its file rewritten', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'keep', spec: SPEC }, w.ctx());
    w.track();
    const handlesPath = join(w.service.vmDir(vm), names.VM_HANDLES);
    writeFileSync(handlesPath, '{"vmm": {"pid": 12');
    await w.restart();
    assert.deepEqual(w.rows(), [{ name: 'keep', state: 'running' }]);
    assert.equal(w.service.alive(vm), true);
    assert.equal((JSON.parse(readFileSync(handlesPath, 'utf8')) as { vmm: { pid: number } }).vmm.pid, w.vmm.started[0]?.pid);
    assert.equal(w.network.reconciledWith?.length, 1, 'its tap is kept by the network sweep');
  });

  test('a start never boots a second VMM on disks a lost VMM still holds', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'twice', spec: SPEC }, w.ctx());
    w.track();
    rmSync(join(w.service.vmDir(vm), names.VM_HANDLES));
    // A daemon that lost the handles and was told the VM stopped (no reconcile).
    w.service = w.build(new DriverRegistry(w.vmm));
    w.store.db.prepare("UPDATE vms SET state = 'stopped'").run();
    await assert.rejects(w.service.start('twice', w.ctx()), { code: 'ERR_VM_RUNNING' });
    assert.equal(w.vmm.started.length, 1, 'no second VMM');
    assert.deepEqual(w.rows(), [{ name: 'twice', state: 'running' }]);
  });

  test('a start refuses disks that some other process holds open', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'held', spec: SPEC, noStart: true }, w.ctx());
    const dir = w.service.vmDir(vm);
    const holder = spawnHolder([join(dir, names.VM_WORK_DISK)], 'not-a-vmm');
    pids.push(holder);
    const disk = join(dir, names.VM_WORK_DISK);
    await waitUntil(() => processMatches(holder, 'not-a-vmm') && holdsOpen(holder, disk));
    await assert.rejects(
      w.service.start('held', w.ctx()),
      (error: unknown) => error instanceof BangerError && error.code === 'ERR_IN_USE' && error.message.includes(String(holder)),
    );
    assert.equal(w.vmm.started.length, 0);
    assert.deepEqual(w.rows(), [{ name: 'held', state: 'stopped' }]);
  });

  test('a VM whose VMM died while the daemon was down is stopped and its tap released', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'gone', spec: SPEC }, w.ctx());
    const handle = w.vmm.started[0];
    assert.ok(handle !== undefined);
    process.kill(handle.pid, 'SIGKILL');
    await waitUntil(() => !processMatches(handle.pid, handle.controlSocket));
    await w.restart();
    assert.deepEqual(w.rows(), [{ name: 'gone', state: 'stopped' }]);
    assert.ok(w.network.detached.some((d) => d.tap === 'faketap0'));
    assert.equal(existsSync(join(w.service.vmDir(vm), names.VM_HANDLES)), false);
    assert.equal(existsSync(w.service.runDir(vm)), false, 'its runtime dir (sockets) is removed');
  });

  test('a create that never finished is removed with its files', async () => {
    const w = new World();
    const vms = new VmsRepo(w.store);
    const reserved = vms.reserve({ id: 'half', name: 'half', imageId: 'img-debian-bookworm', spec: SPEC }, 200);
    mkdirSync(join(w.root, 'vms', reserved.id, '.staging-x'), { recursive: true });
    await w.restart();
    assert.deepEqual(w.rows(), []);
    assert.equal(existsSync(join(w.root, 'vms', 'half')), false);
  });

  test('files and a VMM of a VM whose row a crash lost are removed at startup', async () => {
    const w = new World();
    const vm = await w.service.create({ name: 'lost', spec: SPEC }, w.ctx());
    w.track();
    const pid = w.vmm.started[0]?.pid;
    w.store.db.prepare('DELETE FROM vms').run();
    await w.restart();
    assert.equal(existsSync(w.service.vmDir(vm)), false, 'its VM dir');
    assert.equal(existsSync(w.service.runDir(vm)), false, 'its runtime dir');
    assert.ok(pid !== undefined && w.vmm.killed.includes(pid), 'its VMM was killed');
    assert.deepEqual(w.network.reconciledWith, [], 'its tap is no live VM');
  });

  test('a stop the daemon died in is finished after startup', async () => {
    const w = new World();
    await w.service.create({ name: 'halting', spec: SPEC }, w.ctx());
    w.track();
    w.store.db.prepare("UPDATE vms SET state = 'stopping'").run();
    const due = await w.restart();
    assert.deepEqual(
      due.map((vm) => vm.name),
      ['halting'],
    );
    await w.service.finishStops(due, w.ctx());
    assert.deepEqual(w.rows(), [{ name: 'halting', state: 'stopped' }]);
    assert.equal(
      w.vmm.started.every((h) => !processMatches(h.pid, h.controlSocket)),
      true,
    );
  });

  test('each VM is driven by the driver that started it, whatever the starter is now', async () => {
    const w = new World();
    await w.service.create({ name: 'old-qemu', spec: SPEC }, w.ctx());
    w.track();
    const firecracker = new FakeVmm('firecracker');
    await w.restart(new DriverRegistry(firecracker, { controllers: { qemu: w.vmm } }));
    await w.service.kill('old-qemu', w.ctx());
    assert.equal(w.vmm.killed.length > 0, true, 'the qemu driver ended it');
    assert.deepEqual(firecracker.killed, []);
    await w.service.start('old-qemu', w.ctx());
    for (const handle of firecracker.started) pids.push(handle.pid);
    assert.equal(firecracker.started.length, 1, 'new starts use the current starter');
  });

  test('a failed power-off request is logged with the op id, not swallowed', async () => {
    const w = new World();
    await w.service.create({ name: 'loud', spec: SPEC }, w.ctx());
    w.track();
    await w.service.stop('loud', opContext(w.logger.log, 'op-stop-1'));
    const warned = w.logger.lines.find((l) => l.level === 40 && l.op_id === 'op-stop-1');
    assert.ok(warned !== undefined, 'a warn line with the op id');
    assert.match(String(warned.msg), /power off/);
  });
});

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}
