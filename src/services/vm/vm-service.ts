import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import type { FileSyncEntry } from '../../config/schema.js';
import { forgetHosts, pinHostKey } from '../../guest/known-hosts.js';
import type { GuestConnection } from '../../guest/guest-connection.js';
import { waitForSsh } from '../../guest/ssh-client.js';
import { ensureSshKey } from '../../guest/ssh-keys.js';
import { findExecutable, isStaticElf } from '../../host/executables.js';
import { BangerError } from '../../rpc/errors.js';
import type { ImageRecord } from '../../store/images-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { VmRecord, VmSpec, VmsRepo } from '../../store/vms-repo.js';
import type { VmmDriver } from '../../vmm/driver.js';
import type { ImageService } from '../image/image-service.js';
import type { KernelService } from '../kernel/kernel-service.js';
import type { HostNetwork, VmAttachment } from '../network/host-network.js';
import { slotCapacity, slotNetwork, type NetworkConfig } from '../network/slot.js';
import { KeyedLock } from '../keyed-lock.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import type { OpContext } from '../op-context.js';
import type { GuestAccess } from './guest-access.js';
import { HandleCache } from './handles.js';
import { generateVmName, validateVmName } from './names.js';
import { shutdownVm } from './shutdown.js';
import { runSteps } from './steps.js';
import { validateSpec } from './vm-spec.js';
import { buildVmDisks, growDisk } from './vm-disks.js';

const MINIMAL_INIT = fileURLToPath(new URL('../../guest/minimal-init.sh', import.meta.url));
const SSH_READY_TIMEOUT_MS = 180_000;

export interface VmServiceDeps {
  layout: Layout;
  vms: VmsRepo;
  images: ImageService;
  kernels: KernelService;
  driver: VmmDriver;
  network: HostNetwork;
  guests: GuestAccess;
  networkConfig: NetworkConfig;
  fileSync: readonly FileSyncEntry[];
  defaultImage: string;
  env: NodeJS.ProcessEnv;
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
 * VM lifecycle. The `vms` row is durable intent; the VMM process and tap are
 * momentary facts in the handle cache (and each VM's handles.json). Every
 * multi-step operation runs as steps with per-step rollback, and operations
 * on one VM are serialised by a per-VM lock (different VMs proceed side by
 * side). The VMM is started detached and never bound to a request: stop,
 * kill and delete end it explicitly.
 */
export class VmService {
  readonly #deps: VmServiceDeps;
  readonly #handles = new HandleCache();
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

  /** Runs `fn` holding the VM's lock: lifecycle operations on one VM never interleave. */
  #locked<T>(vmId: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(vmId, fn);
  }

  alive(vm: VmRecord): boolean {
    const handles = this.#handles.get(vm.id);
    return handles !== undefined && this.#deps.driver.isAlive(handles.vmm);
  }

  find(ref: string): VmRecord {
    return resolveRef(this.#deps.vms.list(), ref, 'vm');
  }

  view(vm: VmRecord): VmView {
    const handles = this.#handles.get(vm.id);
    const alive = this.alive(vm);
    return {
      vm,
      image: this.#deps.images.byId(vm.imageId),
      alive,
      guestIp: slotNetwork(this.#deps.networkConfig, vm.slot).guestIp,
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
    const imageName = params.image ?? this.#deps.defaultImage;
    if (params.name !== undefined) validateVmName(params.name);
    validateSpec(params.spec);

    ctx.progress('image', `resolving image ${imageName}`);
    const image = await this.#resolveImage(imageName, ctx);
    const kernel = this.#deps.kernels.byId(image.kernelId);
    if (kernel === undefined) throw new BangerError('ERR_NOT_FOUND', `image ${image.name} refers to a kernel that no longer exists`);

    const name = params.name ?? generateVmName((n) => this.#deps.vms.list().some((vm) => vm.name === n));
    const id = newId();
    let vm: VmRecord | undefined;
    await runSteps(
      [
        {
          stage: 'reserve',
          detail: `reserving name ${name} and an address`,
          run: () => {
            vm = this.#deps.vms.reserve({ id, name, imageId: image.id, spec: params.spec }, slotCapacity(this.#deps.networkConfig.subnet));
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
            if (vm === undefined) throw new Error('reserve step did not run');
            await this.#buildDisks(vm, ctx);
          },
          rollback: () => {
            rmSync(this.vmDir({ id }), { recursive: true, force: true });
            if (vm !== undefined) forgetHosts(this.#deps.layout.knownHosts, hostNames(vm, slotNetwork(this.#deps.networkConfig, vm.slot).guestIp));
            return Promise.resolve();
          },
        },
        ...(params.noStart === true
          ? []
          : [
              {
                stage: 'boot',
                detail: 'starting the VM',
                run: async () => {
                  if (vm === undefined) throw new Error('reserve step did not run');
                  const created = vm;
                  await this.#locked(id, () => this.#start(created, ctx, { keepOnFailure: false }));
                },
              },
            ]),
      ],
      ctx,
    );
    const created = this.#deps.vms.get(id);
    if (created === undefined) throw new Error(`VM ${id} vanished after create`);
    return created;
  }

  async #resolveImage(name: string, ctx: OpContext): Promise<ImageRecord> {
    try {
      return this.#deps.images.find(name);
    } catch (error) {
      if (!(error instanceof BangerError && error.code === 'ERR_NOT_FOUND' && this.#deps.images.inCatalog(name))) throw error;
    }
    ctx.progress('pull', `image ${name} is not here yet: pulling it from the catalog`);
    return (await this.#deps.images.pull(name, ctx)).image;
  }

  async #buildDisks(vm: VmRecord, ctx: OpContext): Promise<void> {
    const net = slotNetwork(this.#deps.networkConfig, vm.slot);
    const key = await ensureSshKey(this.#deps.layout.sshKey);
    const busybox = findExecutable('busybox', this.#deps.env);
    if (busybox === undefined || !isStaticElf(busybox)) {
      throw new BangerError('ERR_HOST_TOOL_MISSING', 'a static busybox is needed for the guest', { hint: 'apt-get install busybox-static' });
    }
    const { hostPublicKey } = await buildVmDisks(
      this.vmDir(vm),
      { name: vm.name, guestIp: net.guestIp, gatewayIp: net.gatewayIp, busybox, minimalInit: MINIMAL_INIT },
      { authorizedKey: key.publicKey, fileSync: this.#deps.fileSync, sizeBytes: vm.spec.diskSizeBytes },
      ctx,
    );
    // Pinned before the first boot: the first connection already verifies the key banger made.
    pinHostKey(this.#deps.layout.knownHosts, hostNames(vm, net.guestIp), hostPublicKey);
  }

  start(ref: string, ctx: OpContext): Promise<VmRecord> {
    const vm = this.find(ref);
    return this.#locked(vm.id, async () => {
      const current = this.#deps.vms.get(vm.id) ?? vm;
      if (this.alive(current)) throw new BangerError('ERR_VM_RUNNING', `VM ${current.name} is already running`);
      await this.#start(current, ctx, { keepOnFailure: true });
      return this.#deps.vms.get(vm.id) ?? current;
    });
  }

  /**
   * Boots a VM: tap, VMM, then wait until SSH answers with a trusted host key.
   * Caller holds the VM lock. On failure everything this started is undone;
   * an existing VM is left stopped with the error recorded.
   */
  async #start(vm: VmRecord, ctx: OpContext, options: { keepOnFailure: boolean }): Promise<void> {
    const image = this.#deps.images.byId(vm.imageId);
    const kernel = image === undefined ? undefined : this.#deps.kernels.byId(image.kernelId);
    if (image === undefined || kernel === undefined) throw new BangerError('ERR_NOT_FOUND', `VM ${vm.name}'s image or kernel no longer exists`);
    const kernelFiles = this.#deps.kernels.files(this.#deps.kernels.ensureCurrentInitramfs(kernel, ctx));
    const net = slotNetwork(this.#deps.networkConfig, vm.slot);
    const dir = this.vmDir(vm);
    const workDisk = join(dir, names.VM_WORK_DISK);
    const key = await ensureSshKey(this.#deps.layout.sshKey);
    let tap: string | undefined;

    this.#deps.vms.setState(vm.id, 'starting');
    try {
      await runSteps(
        [
          {
            stage: 'disks',
            detail: 'checking disks',
            run: async () => {
              if (existsSync(workDisk) && statSync(workDisk).size < vm.spec.diskSizeBytes) {
                ctx.progress('disks', `growing the work disk to ${vm.spec.diskSizeBytes / 1024 ** 3}G`);
                await growDisk(workDisk, vm.spec.diskSizeBytes, ctx);
              }
            },
          },
          {
            stage: 'network',
            detail: `network: ${net.guestIp} on ${this.#deps.network.bridge} (${vm.spec.network}${vm.spec.nat ? ', NAT' : ''})`,
            run: async () => {
              tap = await this.#deps.network.acquireTap();
              await this.#deps.network.attach({ tap, guestIp: net.guestIp, mac: net.mac, nat: vm.spec.nat, network: vm.spec.network });
              failpoint(FAILPOINTS.startNetwork);
            },
            rollback: () => this.#deps.network.detach(net.guestIp, tap),
          },
          {
            stage: 'boot',
            detail: `booting (${this.#deps.driver.name}, ${vm.spec.vcpu} vcpu, ${vm.spec.memoryMiB} MiB, ${vm.spec.init} init)`,
            run: async () => {
              const handle = await this.#deps.driver.start(
                {
                  vmId: vm.id,
                  vcpu: vm.spec.vcpu,
                  memoryMiB: vm.spec.memoryMiB,
                  kernel: { vmlinux: kernelFiles.vmlinux, initramfs: kernelFiles.initramfs },
                  disks: { image: image.spec.rootfs, upper: join(dir, names.VM_UPPER_DISK), work: workDisk },
                  net: { tap: requireTap(tap), mac: net.mac, guestIp: net.guestIp, prefix: net.prefix, gatewayIp: net.gatewayIp },
                  init: vm.spec.init,
                  vmDir: dir,
                  runDir: this.runDir(vm),
                },
                ctx.signal,
              );
              this.#handles.set(vm.id, dir, { vmm: handle, tap: requireTap(tap) });
              ctx.log.info({ vm: vm.name, pid: handle.pid, accel: handle.accel }, 'vmm started');
              failpoint(FAILPOINTS.startBoot);
            },
            rollback: async () => {
              const handles = this.#handles.get(vm.id);
              if (handles !== undefined) await this.#deps.driver.kill(handles.vmm);
              this.#handles.clear(vm.id, dir);
            },
          },
          {
            stage: 'ssh',
            detail: `waiting for SSH on ${net.guestIp}`,
            run: async () => {
              failpoint(FAILPOINTS.startSsh);
              const client = await waitForSsh(
                { host: net.guestIp, privateKey: key.privateKey, knownHosts: this.#deps.layout.knownHosts },
                {
                  deadlineMs: SSH_READY_TIMEOUT_MS,
                  signal: ctx.signal,
                  stillBooting: () => (this.alive(vm) ? undefined : `the VM stopped while booting: ${this.consoleTail(vm, 5).join(' | ')}`),
                },
              );
              this.#deps.guests.adopt(vm.id, client, net.guestIp);
            },
          },
        ],
        ctx,
      );
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (options.keepOnFailure) this.#deps.vms.setState(vm.id, 'stopped', message);
      throw error;
    }
    this.#deps.vms.setState(vm.id, 'running');
    this.#deps.onRunningChanged?.();
  }

  stop(ref: string, ctx: OpContext): Promise<VmRecord> {
    const vm = this.find(ref);
    return this.#locked(vm.id, async () => {
      await this.#stop(vm, ctx);
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  /** Graceful stop (see shutdownVm), then the host side is cleaned up. Caller holds the VM lock. */
  async #stop(vm: VmRecord, ctx: OpContext): Promise<void> {
    const handles = this.#handles.get(vm.id);
    if (handles !== undefined && this.#deps.driver.isAlive(handles.vmm)) {
      this.#deps.vms.setState(vm.id, 'stopping');
      const guestIp = slotNetwork(this.#deps.networkConfig, vm.slot).guestIp;
      await shutdownVm(this.#deps, { id: vm.id, init: vm.spec.init, guestIp }, handles.vmm, ctx);
    }
    await this.#cleanupRuntime(vm);
    this.#deps.vms.setState(vm.id, 'stopped');
  }

  /** Removes what a VM's run left on the host: VMM (if any), tap, sockets, handles. Idempotent. */
  async #cleanupRuntime(vm: VmRecord): Promise<void> {
    this.#deps.guests.close(vm.id);
    const handles = this.#handles.get(vm.id) ?? this.#handles.load(vm.id, this.vmDir(vm));
    if (handles !== undefined) await this.#deps.driver.kill(handles.vmm);
    await this.#deps.network.detach(slotNetwork(this.#deps.networkConfig, vm.slot).guestIp, handles?.tap);
    this.#handles.clear(vm.id, this.vmDir(vm));
    rmSync(this.runDir(vm), { recursive: true, force: true });
    this.#deps.onRunningChanged?.();
  }

  kill(ref: string, ctx: OpContext): Promise<VmRecord> {
    const vm = this.find(ref);
    return this.#locked(vm.id, async () => {
      ctx.progress('kill', `killing ${vm.name}`);
      await this.#cleanupRuntime(vm);
      this.#deps.vms.setState(vm.id, 'stopped');
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  restart(ref: string, ctx: OpContext): Promise<VmRecord> {
    const vm = this.find(ref);
    return this.#locked(vm.id, async () => {
      await this.#stop(vm, ctx);
      await this.#start(this.#deps.vms.get(vm.id) ?? vm, ctx, { keepOnFailure: true });
      return this.#deps.vms.get(vm.id) ?? vm;
    });
  }

  /** Deletes a VM, killing it first if it runs; forgets its host key. */
  delete(ref: string, ctx: OpContext): Promise<VmRecord> {
    const vm = this.find(ref);
    return this.#locked(vm.id, async () => {
      ctx.progress('delete', `deleting ${vm.name}`);
      await this.#cleanupRuntime(vm);
      failpoint(FAILPOINTS.deleteCleanup);
      rmSync(this.vmDir(vm), { recursive: true, force: true });
      forgetHosts(this.#deps.layout.knownHosts, hostNames(vm, slotNetwork(this.#deps.networkConfig, vm.slot).guestIp));
      this.#deps.vms.delete(vm.id);
      return vm;
    });
  }

  /** Changes vcpu/memory/disk for the next start (the disk only grows); NAT applies at once to a running VM. */
  set(ref: string, changes: Partial<Pick<VmSpec, 'vcpu' | 'memoryMiB' | 'diskSizeBytes' | 'nat'>>): Promise<VmRecord> {
    const found = this.find(ref);
    return this.#locked(found.id, async () => {
      const vm = this.#deps.vms.get(found.id) ?? found;
      const spec = { ...vm.spec, ...changes };
      validateSpec(spec);
      if (spec.diskSizeBytes < vm.spec.diskSizeBytes) {
        throw new BangerError('ERR_INVALID_ARGUMENT', `the work disk can only grow (it is ${vm.spec.diskSizeBytes / 1024 ** 3}G)`, {
          hint: 'shrinking could lose data; create a new VM for a smaller disk',
        });
      }
      if (spec.nat !== vm.spec.nat && this.alive(vm)) await this.#deps.network.setNat(slotNetwork(this.#deps.networkConfig, vm.slot).guestIp, spec.nat);
      this.#deps.vms.setSpec(vm.id, spec);
      return { ...vm, spec };
    });
  }

  /** The last lines of the VM's serial console. */
  consoleTail(vm: VmRecord, lines: number): string[] {
    const path = join(this.vmDir(vm), names.VM_CONSOLE_LOG);
    if (!existsSync(path)) return [];
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-lines);
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
      const vm = this.#deps.vms.get(found.id) ?? found;
      if (!this.alive(vm)) {
        throw new BangerError('ERR_VM_NOT_RUNNING', `VM ${vm.name} is not running`, { hint: `start it with \`banger vm start ${vm.name}\`` });
      }
      const guest = await this.#deps.guests.connection(vm.id, slotNetwork(this.#deps.networkConfig, vm.slot).guestIp);
      return { vm, guest };
    });
  }

  /** What the CLI needs to run the system ssh into a running VM. */
  async sshTarget(ref: string): Promise<{ vm: VmRecord; host: string; keyPath: string; knownHosts: string }> {
    const vm = await this.#refresh(this.find(ref));
    if (!this.alive(vm)) {
      throw new BangerError('ERR_VM_NOT_RUNNING', `VM ${vm.name} is not running`, { hint: `start it with \`banger vm start ${vm.name}\`` });
    }
    return { vm, host: slotNetwork(this.#deps.networkConfig, vm.slot).guestIp, keyPath: this.#deps.layout.sshKey, knownHosts: this.#deps.layout.knownHosts };
  }

  /**
   * At daemon start: a VM recorded as running whose VMM still runs is kept
   * (its handles come back from handles.json); one whose VMM died while the
   * daemon was down is demoted to stopped and its tap and sockets removed.
   */
  async reconcile(log: OpContext['log']): Promise<void> {
    const live: VmAttachment[] = [];
    for (const vm of this.#deps.vms.list()) {
      if (vm.state !== 'running' && vm.state !== 'starting' && vm.state !== 'stopping') continue;
      const handles = this.#handles.load(vm.id, this.vmDir(vm));
      if (handles !== undefined && this.#deps.driver.isAlive(handles.vmm)) {
        if (vm.state !== 'running') this.#deps.vms.setState(vm.id, 'running');
        const net = slotNetwork(this.#deps.networkConfig, vm.slot);
        live.push({ tap: handles.tap, guestIp: net.guestIp, mac: net.mac, nat: vm.spec.nat, network: vm.spec.network });
        log.info({ vm: vm.name, pid: handles.vmm.pid }, 'reconcile: VM still running');
        continue;
      }
      try {
        await this.#cleanupRuntime(vm);
      } catch (error) {
        // The host side is swept below (taps and NAT of no live VM); the VM is stopped either way.
        log.warn({ vm: vm.name, err_message: error instanceof Error ? error.message : String(error) }, 'reconcile: cleanup incomplete');
      }
      this.#deps.vms.setState(vm.id, 'stopped', 'the VM stopped while the daemon was down');
      log.info({ vm: vm.name }, 'reconcile: VM no longer running, cleaned up');
    }
    await this.#deps.network.reconcile(live);
    this.#deps.onRunningChanged?.();
  }
}

/** The names a VM's host key is pinned under: its address, its name and `<name>.vm`. */
function hostNames(vm: { name: string }, guestIp: string): string[] {
  return [guestIp, vm.name, `${vm.name}.vm`];
}

function requireTap(tap: string | undefined): string {
  if (tap === undefined) throw new Error('network step did not run');
  return tap;
}
