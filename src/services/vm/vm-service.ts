import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import type { GuestConnection } from '../../guest/guest-connection.js';
import { BangerError } from '../../rpc/errors.js';
import { resolveCreateImage } from './create-image.js';
import type { ImageRecord } from '../../store/images-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { VmRecord, VmSpec, VmsRepo } from '../../store/vms-repo.js';
import type { ImageService } from '../image/image-service.js';
import type { KernelService } from '../kernel/kernel-service.js';
import type { HostNetwork } from '../network/host-network.js';
import { slotCapacity, slotNetwork, type NetworkConfig } from '../network/slot.js';
import { KeyedLock } from '../keyed-lock.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import type { OpContext } from '../op-context.js';
import { bootVm } from './boot.js';
import { reconcileVms } from './reconcile.js';
import type { GuestAccess } from './guest-access.js';
import { checkHostCapacity, type HostCapacity } from './host-capacity.js';
import { generateVmName, validateVmName } from './names.js';
import { shutdownVm } from './shutdown.js';
import { runSteps } from './steps.js';
import { validateSpec } from './vm-spec.js';
import type { VmProvisioner } from './vm-provisioner.js';
import type { VmPlace, VmRuntime } from './vm-runtime.js';

/** The parts of the host network VM lifecycle uses (a fake stands in for it in unit tests). */
export type VmNetworkPort = Pick<HostNetwork, 'bridge' | 'acquireTap' | 'attach' | 'detach' | 'setNat' | 'reconcile'>;
/** The parts of guest access VM lifecycle uses. */
export type VmGuestPort = Pick<GuestAccess, 'waitReady' | 'connection' | 'close'>;

export interface VmServiceDeps {
  layout: Pick<Layout, 'vmsDir' | 'runtimeDir' | 'sshKey' | 'knownHosts'>;
  vms: VmsRepo;
  images: Pick<ImageService, 'byId' | 'list' | 'find' | 'inCatalog' | 'pull' | 'findByReference'>;
  kernels: Pick<KernelService, 'byId' | 'files' | 'ensureCurrentInitramfs'>;
  runtime: VmRuntime;
  provisioner: Pick<VmProvisioner, 'build' | 'growWorkDisk' | 'remove' | 'pruneHostKeys'>;
  network: VmNetworkPort;
  guests: VmGuestPort;
  networkConfig: NetworkConfig;
  defaultImage: string;
  /** The host's CPUs and memory, against which each VM's spec is checked (the real host unless a test says otherwise). */
  host?: HostCapacity;
  /** Called after the set of running VMs may have changed (banger's ssh_config lists them). */
  onRunningChanged?: () => void;
}

export interface CreateParams {
  name?: string | undefined;
  image?: string | undefined;
  spec: VmSpec;
  /** Create the disks but do not boot. */
  noStart?: boolean | undefined;
}

/** A VM as seen now: its record plus whether its VMM is actually alive. */
export interface VmView {
  vm: VmRecord;
  image: ImageRecord | undefined;
  alive: boolean;
  guestIp: string;
  accel: string | null;
  pid: number | null;
}

/**
 * VM lifecycle, as an orchestrator of steps over four pieces: the store's
 * `vms` row (durable intent), the runtime (which VMM runs each VM; see
 * VmRuntime), the provisioner (its files) and the host network. Every
 * multi-step operation runs as steps with per-step rollback; operations on
 * one VM are serialised by a per-VM lock, different VMs proceed side by side.
 * The VMM is started detached and never bound to a request: stop, kill and
 * delete end it explicitly.
 */
export class VmService {
  readonly #deps: VmServiceDeps;
  readonly #locks = new KeyedLock();

  constructor(deps: VmServiceDeps) {
    this.#deps = deps;
  }

  vmDir(vm: { id: string }): string {
    return join(this.#deps.layout.vmsDir, vm.id);
  }

  runDir(vm: { id: string }): string {
    return join(this.#deps.layout.runtimeDir, names.VMS_DIR, vm.id);
  }

  #place(vm: { id: string }): VmPlace {
    return { id: vm.id, vmDir: this.vmDir(vm), runDir: this.runDir(vm) };
  }

  #guestIp(vm: VmRecord): string {
    return slotNetwork(this.#deps.networkConfig, vm.slot).guestIp;
  }

  /** Runs `fn` holding the VM's lock: lifecycle operations on one VM never interleave. */
  #locked<T>(vmId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(vmId, fn);
  }

  /** The VM's current record, read under its lock (a caller's earlier copy may be stale). */
  #current(vm: VmRecord): VmRecord {
    const current = this.#deps.vms.get(vm.id);
    if (current === undefined) throw new BangerError('ERR_NOT_FOUND', `VM ${vm.name} was deleted meanwhile`);
    return current;
  }

  alive(vm: { id: string }): boolean {
    return this.#deps.runtime.alive(vm.id);
  }

  find(ref: string): VmRecord {
    return resolveRef(this.#deps.vms.list(), ref, 'vm');
  }

  view(vm: VmRecord): VmView {
    const handles = this.#deps.runtime.handles(vm.id);
    const alive = this.alive(vm);
    return {
      vm,
      image: this.#deps.images.byId(vm.imageId),
      alive,
      guestIp: this.#guestIp(vm),
      accel: alive ? (handles?.vmm.accel ?? null) : null,
      pid: alive ? (handles?.vmm.pid ?? null) : null,
    };
  }

  /** All VMs; a VM recorded as running whose VMM has died is cleaned up and shown stopped. */
  async list(): Promise<VmView[]> {
    const views: VmView[] = [];
    for (const vm of this.#deps.vms.list()) views.push(this.view(await this.#refresh(vm)));
    return views;
  }

  async show(ref: string): Promise<VmView> {
    return this.view(await this.#refresh(this.find(ref)));
  }

  async #refresh(vm: VmRecord): Promise<VmRecord> {
    if (vm.state !== 'running' || this.alive(vm)) return vm;
    return this.#locked(vm.id, async () => {
      const current = this.#deps.vms.get(vm.id);
      if (current?.state !== 'running' || this.alive(current)) return current ?? vm;
      await this.#cleanupRuntime(current);
      this.#deps.vms.setState(current.id, 'stopped', 'the VM exited on its own');
      return { ...current, state: 'stopped' as const, lastError: 'the VM exited on its own' };
    });
  }

  /** Creates a VM (resolving, and if needed pulling, its image) and boots it unless noStart. */
  async create(params: CreateParams, ctx: OpContext): Promise<VmRecord> {
    if (params.name !== undefined) validateVmName(params.name);
    validateSpec(params.spec);
    checkHostCapacity(params.spec, this.#deps.host);

    const imageRef = params.image ?? this.#deps.defaultImage;
    ctx.progress('image', `resolving image ${imageRef}`);
    const image = await resolveCreateImage(this.#deps.images, imageRef, { typed: params.image !== undefined }, ctx);
    const kernel = this.#deps.kernels.byId(image.kernelId);
    if (kernel === undefined) throw new BangerError('ERR_NOT_FOUND', `image ${image.name} refers to a kernel that no longer exists`);
    if (image.spec.sshServer === 'banger' && params.spec.init === 'systemd') {
      throw new BangerError('ERR_INVALID_ARGUMENT', `image ${image.name} is from a registry and boots under banger's own init`, {
        hint: 'leave out --init systemd (the default, --init minimal, runs banger init and SSH server)',
      });
    }

    const name = params.name ?? generateVmName((n) => this.#deps.vms.list().some((vm) => vm.name === n));
    const id = newId();
    let reserved: VmRecord | undefined;
    const vm = (): VmRecord => {
      if (reserved === undefined) throw new Error('reserve step did not run');
      return reserved;
    };
    await runSteps(
      [
        {
          stage: 'reserve',
          detail: `reserving name ${name} and an address`,
          run: () => {
            // 'creating' until the disks are done: a daemon that dies before then leaves a row startup removes.
            reserved = this.#deps.vms.reserve({ id, name, imageId: image.id, spec: params.spec }, slotCapacity(this.#deps.networkConfig.subnet));
            return Promise.resolve();
          },
          rollback: () => {
            this.#deps.vms.delete(id);
            return Promise.resolve();
          },
        },
        {
          stage: 'disks',
          detail: 'preparing disks (upper layer over the image, work disk for /root)',
          run: async () => {
            const net = slotNetwork(this.#deps.networkConfig, vm().slot);
            await this.#deps.provisioner.build(vm(), this.vmDir(vm()), net, { sshServer: image.spec.sshServer ?? 'image' }, ctx);
            this.#deps.vms.setState(id, 'created');
          },
          rollback: () => {
            this.#deps.provisioner.remove(vm(), this.vmDir(vm()), this.#guestIp(vm()));
            return Promise.resolve();
          },
        },
        ...(params.noStart === true
          ? []
          : [
              {
                stage: 'boot',
                detail: 'starting the VM',
                run: () => this.#locked(id, () => bootVm(this.#deps, vm(), this.#place(vm()), ctx, { keepOnFailure: false })),
              },
            ]),
      ],
      ctx,
    );
    const created = this.#deps.vms.get(id);
    if (created === undefined) throw new Error(`VM ${id} vanished after create`);
    return created;
  }

  start(ref: string, ctx: OpContext): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#current(found);
      if (vm.state === 'creating') throw new BangerError('ERR_VM_NOT_RUNNING', `VM ${vm.name} is still being created`);
      // A VMM this daemon lost track of counts as running: never boot a second one on the same disks.
      if (this.alive(vm) || this.#deps.runtime.adopt(this.#place(vm)).alive) {
        if (vm.state !== 'running') this.#deps.vms.setState(vm.id, 'running');
        throw new BangerError('ERR_VM_RUNNING', `VM ${vm.name} is already running`);
      }
      await bootVm(this.#deps, vm, this.#place(vm), ctx, { keepOnFailure: true });
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  stop(ref: string, ctx: OpContext): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#current(found);
      await this.#stop(vm, ctx);
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  /** Graceful stop (see shutdownVm), then the host side is cleaned up. Caller holds the VM lock. */
  async #stop(vm: VmRecord, ctx: OpContext): Promise<void> {
    const handles = this.#deps.runtime.handles(vm.id);
    if (handles !== undefined && this.alive(vm)) {
      this.#deps.vms.setState(vm.id, 'stopping');
      const driver = this.#deps.runtime.driverFor(handles.vmm);
      await shutdownVm({ driver, guests: this.#deps.guests }, { id: vm.id, init: vm.spec.init, guestIp: this.#guestIp(vm) }, handles.vmm, ctx);
    }
    await this.#cleanupRuntime(vm);
    this.#deps.vms.setState(vm.id, 'stopped');
  }

  /** Removes what a VM's run left on the host: VMM (if any), tap, sockets, handles. Idempotent. */
  async #cleanupRuntime(vm: VmRecord): Promise<void> {
    this.#deps.guests.close(vm.id);
    const handles = await this.#deps.runtime.kill(this.#place(vm));
    await this.#deps.network.detach(this.#guestIp(vm), handles?.tap === '' ? undefined : handles?.tap);
    this.#deps.onRunningChanged?.();
  }

  kill(ref: string, ctx: OpContext): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#current(found);
      ctx.progress('kill', `killing ${vm.name}`);
      await this.#cleanupRuntime(vm);
      this.#deps.vms.setState(vm.id, 'stopped');
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  restart(ref: string, ctx: OpContext): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      await this.#stop(this.#current(found), ctx);
      const vm = this.#current(found);
      await bootVm(this.#deps, vm, this.#place(vm), ctx, { keepOnFailure: true });
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  /** Deletes a VM, killing it first if it runs; forgets its host key. */
  delete(ref: string, ctx: OpContext): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#current(found);
      ctx.progress('delete', `deleting ${vm.name}`);
      await this.#cleanupRuntime(vm);
      failpoint(FAILPOINTS.deleteCleanup);
      this.#deps.provisioner.remove(vm, this.vmDir(vm), this.#guestIp(vm));
      this.#deps.vms.delete(vm.id);
      return vm;
    });
  }

  /** Changes vcpu/memory/disk for the next start (the disk only grows); NAT applies at once to a running VM. */
  set(ref: string, changes: Partial<Pick<VmSpec, 'vcpu' | 'memoryMiB' | 'diskSizeBytes' | 'nat'>>): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      // Read under the lock: a spec read before it would drop a concurrent set's change.
      const vm = this.#current(found);
      const spec = { ...vm.spec, ...changes };
      validateSpec(spec);
      checkHostCapacity(spec, this.#deps.host);
      if (spec.diskSizeBytes < vm.spec.diskSizeBytes) {
        throw new BangerError('ERR_INVALID_ARGUMENT', `the work disk can only grow (it is ${vm.spec.diskSizeBytes / 1024 ** 3}G)`, {
          hint: 'shrinking could lose data; create a new VM for a smaller disk',
        });
      }
      if (spec.nat !== vm.spec.nat && this.alive(vm)) await this.#deps.network.setNat(this.#guestIp(vm), spec.nat);
      this.#deps.vms.setSpec(vm.id, spec);
      return { ...vm, spec };
    });
  }

  /**
   * A running VM and its open guest connection, for guest I/O (exec,
   * workspaces). The VM lock is held only while checking that it runs and
   * fetching the connection, never during the I/O: a long import must not
   * hold up `vm stop` or `vm delete`, which close the connection and so end
   * whatever runs on it.
   */
  guest(ref: string): Promise<{ vm: VmRecord; guest: GuestConnection }> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#current(found);
      if (!this.alive(vm)) throw notRunning(vm);
      const guest = await this.#deps.guests.connection(vm.id, this.#guestIp(vm));
      return { vm, guest };
    });
  }

  /** What the CLI needs to run the system ssh into a running VM. */
  async sshTarget(ref: string): Promise<{ vm: VmRecord; host: string; keyPath: string; knownHosts: string }> {
    const vm = await this.#refresh(this.find(ref));
    if (!this.alive(vm)) throw notRunning(vm);
    return { vm, host: this.#guestIp(vm), keyPath: this.#deps.layout.sshKey, knownHosts: this.#deps.layout.knownHosts };
  }

  /**
   * At daemon start, before any request (see reconcileVms). Returns the VMs
   * whose stop was interrupted and is still due (see finishStops).
   */
  reconcile(log: OpContext['log']): Promise<VmRecord[]> {
    return reconcileVms(this.#deps, (vm) => this.#place(vm), log);
  }

  /** Completes stops a dead daemon left half-done (the guest was asked to power off; its VMM may still run). */
  async finishStops(vms: readonly VmRecord[], ctx: OpContext): Promise<void> {
    for (const vm of vms) {
      try {
        await this.#locked(vm.id, () => this.#stop(this.#current(vm), ctx));
      } catch (error) {
        ctx.log.warn({ vm: vm.name, err_message: error instanceof Error ? error.message : String(error) }, 'could not finish an interrupted stop');
      }
    }
  }
}

function notRunning(vm: VmRecord): BangerError {
  return new BangerError('ERR_VM_NOT_RUNNING', `VM ${vm.name} is not running`, { hint: `start it with \`banger vm start ${vm.name}\`` });
}
