/**
 * Stand-ins for the parts VmService orchestrates, for unit tests that check
 * its rollback, locking and reconcile in milliseconds. The fake VMM is a real
 * process (a shell loop) carrying the VM's control socket path on its command
 * line and holding its disks open, so liveness, rediscovery from /proc and
 * the disks-in-use guard run for real; only the guest is imaginary.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import pino, { type Logger } from 'pino';

import * as names from '../../src/config/filenames.js';
import { killProcess, processMatches } from '../../src/host/process.js';
import type { BangerError } from '../../src/rpc/errors.js';
import type { OpContext } from '../../src/services/op-context.js';
import type { VmGuestPort, VmNetworkPort, VmView } from '../../src/services/vm/vm-service.js';
import type { VmAddress } from '../../src/services/vm/vm-provisioner.js';
import type { VmAttachment } from '../../src/services/network/host-network.js';
import { openStore, type Store } from '../../src/store/database.js';
import type { ImageRecord } from '../../src/store/images-repo.js';
import { resolveRef } from '../../src/store/records.js';
import type { VmRecord } from '../../src/store/vms-repo.js';
import type { DriverFeatures, DriverName, LaunchSpec, VmmDriver, VmmHandle } from '../../src/vmm/driver.js';
import { API_SOCKET } from '../../src/vmm/firecracker/firecracker-driver.js';
import { QMP_SOCKET } from '../../src/vmm/qemu/qemu-driver.js';

/** A VMM that is a shell loop: alive until killed, its control socket path on its command line, its disks open. */
export class FakeVmm implements VmmDriver {
  readonly features: DriverFeatures = { requestShutdown: true, softwareEmulation: true };
  readonly started: VmmHandle[] = [];
  readonly killed: number[] = [];
  /** Makes the next start fail with this error. */
  failNextStart: Error | undefined;

  constructor(readonly name: DriverName = 'qemu') {}

  start(spec: LaunchSpec): Promise<VmmHandle> {
    if (this.failNextStart !== undefined) {
      const error = this.failNextStart;
      this.failNextStart = undefined;
      return Promise.reject(error);
    }
    mkdirSync(spec.runDir, { recursive: true });
    const controlSocket = join(spec.runDir, this.name === 'qemu' ? QMP_SOCKET : API_SOCKET);
    const pid = spawnHolder([spec.disks.upper, spec.disks.work], controlSocket);
    const handle: VmmHandle = { driver: this.name, pid, controlSocket, accel: 'fake' };
    this.started.push(handle);
    return Promise.resolve(handle);
  }

  requestShutdown(handle: VmmHandle): Promise<void> {
    return this.kill(handle);
  }

  async kill(handle: VmmHandle): Promise<void> {
    this.killed.push(handle.pid);
    await killProcess(handle.pid, handle.controlSocket);
  }

  isAlive(handle: VmmHandle): boolean {
    return processMatches(handle.pid, handle.controlSocket);
  }
}

/**
 * Starts a detached process that holds `files` open and carries `marker` in
 * its argv, and never forks. Returns its pid. (A shell loop would fork a
 * `sleep` every second, and until that child execs it is a copy of the shell
 * with the marker on its command line: killed "VMMs" were then found alive
 * again by the daemon's rediscovery from /proc, on a loaded machine.)
 */
export function spawnHolder(files: readonly string[], marker: string): number {
  const hold = "const fs = require('node:fs'); for (const file of process.argv.slice(3)) fs.openSync(file, 'r'); setInterval(() => undefined, 1 << 30);";
  const child = spawn(process.execPath, ['-e', hold, 'fake-vmm', marker, ...files], { detached: true, stdio: 'ignore' });
  child.unref();
  if (child.pid === undefined) throw new Error('could not spawn the fake VMM');
  return child.pid;
}

export class FakeNetwork implements VmNetworkPort {
  readonly bridge = 'fakebr0';
  readonly attached = new Map<string, VmAttachment>();
  readonly detached: { guestIp: string; tap: string | undefined }[] = [];
  reconciledWith: readonly VmAttachment[] | undefined;
  #next = 0;

  acquireTap(): Promise<string> {
    return Promise.resolve(`faketap${this.#next++}`);
  }
  attach(vm: VmAttachment): Promise<void> {
    this.attached.set(vm.guestIp, vm);
    return Promise.resolve();
  }
  detach(guestIp: string, tap: string | undefined): Promise<void> {
    this.attached.delete(guestIp);
    this.detached.push({ guestIp, tap });
    return Promise.resolve();
  }
  setNat(guestIp: string, enabled: boolean): Promise<void> {
    const vm = this.attached.get(guestIp);
    if (vm !== undefined) this.attached.set(guestIp, { ...vm, nat: enabled });
    return Promise.resolve();
  }
  reconcile(live: readonly VmAttachment[]): Promise<void> {
    this.reconciledWith = live;
    return Promise.resolve();
  }
}

/** A guest that "answers SSH" at once, or (dieOnBoot) whose VMM dies while it boots. */
export class FakeGuests implements VmGuestPort {
  /** Called during waitReady; return true to make the VM die before answering. */
  dieOnBoot: ((vmId: string) => Promise<void>) | undefined;
  readonly closed: string[] = [];

  async waitReady(vmId: string, _host: string, options: { stillBooting: () => BangerError | undefined }): Promise<void> {
    if (this.dieOnBoot !== undefined) {
      await this.dieOnBoot(vmId);
      for (let i = 0; i < 100; i++) {
        const died = options.stillBooting();
        if (died !== undefined) throw died;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      throw new Error('the fake VM did not die');
    }
  }
  connection(): never {
    throw new Error('the fake guest has no connection');
  }
  close(vmId: string): void {
    this.closed.push(vmId);
  }
}

/** Disks as empty files: enough for the runtime to hold and the reconcile to see. */
export class FakeProvisioner {
  readonly removed: string[] = [];
  failBuild: Error | undefined;

  build(_vm: VmRecord, vmDir: string, _address: VmAddress): Promise<void> {
    if (this.failBuild !== undefined) return Promise.reject(this.failBuild);
    mkdirSync(vmDir, { recursive: true });
    writeFileSync(join(vmDir, names.VM_UPPER_DISK), '');
    writeFileSync(join(vmDir, names.VM_WORK_DISK), '');
    return Promise.resolve();
  }
  growWorkDisk(): Promise<void> {
    return Promise.resolve();
  }
  pruneHostKeys(): number {
    return 0;
  }
  remove(_vm: unknown, vmDir: string): void {
    this.removed.push(vmDir);
    rmSync(vmDir, { recursive: true, force: true });
  }
}

export class FakeImages {
  readonly pulled: string[] = [];
  constructor(
    readonly images: ImageRecord[],
    readonly catalog: string[],
  ) {}
  byId(id: string): ImageRecord | undefined {
    return this.images.find((i) => i.id === id);
  }
  list(): ImageRecord[] {
    return this.images;
  }
  find(ref: string): ImageRecord {
    return resolveRef(this.images, ref, 'image');
  }
  inCatalog(name: string): boolean {
    return this.catalog.includes(name);
  }
  pull(name: string): Promise<{ image: ImageRecord; pulled: boolean }> {
    this.pulled.push(name);
    const image = fakeImage(`img-${name}`, name);
    this.images.push(image);
    return Promise.resolve({ image, pulled: true });
  }
}

export function fakeImage(id: string, name: string): ImageRecord {
  const now = new Date().toISOString();
  return {
    id,
    name,
    state: 'ready',
    source: 'catalog',
    kernelId: 'kernel-1',
    spec: { rootfs: '/nonexistent/rootfs.ext4', managed: true, sizeBytes: 0 },
    createdAt: now,
    updatedAt: now,
  };
}

/** A store whose images table has rows for `images` (the vms table refers to them). */
export function storeWithImages(dir: string, images: readonly ImageRecord[]): Store {
  const store = openStore(join(dir, names.STATE_DB));
  const now = new Date().toISOString();
  store.db
    .prepare("INSERT INTO kernels (id, name, state, source, spec, created_at, updated_at) VALUES ('kernel-1', 'k', 'ready', 'import', '{}', ?, ?)")
    .run(now, now);
  for (const image of images) addImageRow(store, image);
  return store;
}

export function addImageRow(store: Store, image: ImageRecord): void {
  store.db
    .prepare("INSERT INTO images (id, name, state, source, kernel_id, spec, created_at, updated_at) VALUES (?, ?, 'ready', 'catalog', 'kernel-1', '{}', ?, ?)")
    .run(image.id, image.name, image.createdAt, image.createdAt);
}

/** A logger whose lines are kept (parsed) for assertions. */
export function capturingLogger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, stream), lines };
}

export function opContext(log: Logger, opId = 'op-test'): OpContext {
  return { opId, signal: new AbortController().signal, log: log.child({ op_id: opId }), progress: () => undefined };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A VmView of a VM named `vm-<id>` for unit tests that need one but no store: its state, liveness and VMM pid as given. */
export function fakeVmView(id: string, options: { state?: VmRecord['state']; alive?: boolean; pid?: number | null; accel?: string | null } = {}): VmView {
  const now = new Date(0).toISOString();
  return {
    vm: {
      id,
      name: `vm-${id}`,
      state: options.state ?? 'running',
      imageId: 'img',
      slot: 1,
      spec: { vcpu: 1, memoryMiB: 512, diskSizeBytes: 1024 ** 3, init: 'minimal', nat: false, network: 'isolated' },
      lastError: null,
      workspace: null,
      createdAt: now,
      updatedAt: now,
    },
    image: undefined,
    alive: options.alive ?? true,
    guestIp: '172.30.0.2',
    accel: options.accel === undefined ? 'tcg' : options.accel,
    pid: options.pid === undefined ? 4242 : options.pid,
  };
}
