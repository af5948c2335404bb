import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { IMAGE_ROOTFS, KERNEL_INITRAMFS, KERNEL_VMLINUX, STAGING_PREFIX, VM_UPPER_DISK, VM_WORK_DISK, VMS_DIR } from '../../src/config/filenames.js';
import { nftTableName } from '../../src/root-helper/policy.js';
import type { PingResult, VmInfo } from '../../src/rpc/methods.js';
import { slotNetwork, slotOfAddress, type NetworkConfig } from '../../src/services/network/slot.js';
import type { BangerWorld } from '../integration/harness.js';

/**
 * The leak checker of the fault suite: after a crash and recovery, what a
 * world's banger left on the host that belongs to nothing banger manages.
 * "Managed" is the daemon's own view (`vm list`, `daemon status`: asking it
 * starts it, and so runs its reconcile, as any next command would); the
 * host's reality is read directly: /proc, links, nftables sets and rules,
 * the runtime and state dirs, known_hosts, banger's ssh_config and the
 * store's rows (read-only). Every leak is reported, each with its detail.
 */

export type LeakKind = 'daemon' | 'qemu' | 'tap' | 'nft' | 'runtime-dir' | 'vm-dir' | 'staging' | 'known-hosts' | 'ssh-config' | 'vm-row' | 'image' | 'kernel';

export interface Leak {
  kind: LeakKind;
  detail: string;
}

interface VmRow {
  id: string;
  name: string;
  state: string;
  slot: number;
  spec: string;
}

interface ImageRow {
  id: string;
  name: string;
  state: string;
  spec: string;
}

interface KernelRow {
  id: string;
  name: string;
  state: string;
}

/** A QEMU process of this world: its pid, the VM id in its `-name banger-<id>`, and the tap it opened. */
export interface QemuProcess {
  pid: number;
  vmId: string | undefined;
  tap: string | undefined;
}

/** The world's QEMU processes (matched by the world's dirs in their command line), with their VM id and tap. */
export function qemuProcesses(world: BangerWorld): QemuProcess[] {
  return world.vmmPids().map((pid) => {
    let args: string[] = [];
    try {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      // exited meanwhile
    }
    const name = args[args.indexOf('-name') + 1] ?? '';
    const netdev = args[args.indexOf('-netdev') + 1] ?? '';
    return { pid, vmId: /^banger-([0-9a-f]+)$/.exec(name)?.[1], tap: /(?:^|,)ifname=([^,]+)/.exec(netdev)?.[1] };
  });
}

/** The master (bridge) of each of the world's links, from `ip -o link` (in its netns, if any). */
function linkMasters(world: BangerWorld): Map<string, string | undefined> {
  const output = spawnSync('ip', [...(world.netns === undefined ? [] : ['-n', world.netns]), '-o', 'link', 'show'], { encoding: 'utf8' }).stdout;
  const masters = new Map<string, string | undefined>();
  for (const line of output.split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1];
    if (name !== undefined) masters.set(name, / master (\S+)/.exec(line)?.[1]);
  }
  return masters;
}

/** Entries of a directory (none when it does not exist). */
function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Every path under `dir` whose name starts with the staging prefix (not descending into them). */
function stagingDirs(dir: string): string[] {
  const found: string[] = [];
  let list;
  try {
    list = readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of list) {
    const path = join(dir, entry.name);
    if (entry.name.startsWith(STAGING_PREFIX)) found.push(path);
    else if (entry.isDirectory() && !entry.isSymbolicLink()) found.push(...stagingDirs(path));
  }
  return found;
}

/** Elements of an nftables set as lists of parts (a concatenation gives several), via `nft -j`; empty when the set does not exist. */
function setElements(world: BangerWorld, family: string, table: string, set: string): string[][] {
  const output = world.nft('-j', 'list', 'set', family, table, set);
  if (output === undefined) return [];
  const parsed = JSON.parse(output) as { nftables: { set?: { elem?: unknown[] } }[] };
  const elements = parsed.nftables.find((entry) => entry.set !== undefined)?.set?.elem ?? [];
  return elements.map((element) => {
    if (typeof element === 'string') return [element];
    const concat = (element as { concat?: unknown[] } | null)?.concat;
    return Array.isArray(concat) ? concat.map(String) : [JSON.stringify(element)];
  });
}

/** Rules (as JSON text) of one of banger's tables; empty when it does not exist. */
function tableRules(world: BangerWorld, family: string, table: string): string[] {
  const output = world.nft('-j', 'list', 'table', family, table);
  if (output === undefined) return [];
  const parsed = JSON.parse(output) as { nftables: { rule?: { chain?: string; expr?: unknown } }[] };
  return parsed.nftables.filter((entry) => entry.rule !== undefined).map((entry) => `${entry.rule?.chain ?? '?'}: ${JSON.stringify(entry.rule?.expr)}`);
}

function readRows(storePath: string): { vms: VmRow[]; images: ImageRow[]; kernels: KernelRow[] } | string {
  if (!existsSync(storePath)) return { vms: [], images: [], kernels: [] };
  let db: Database.Database | undefined;
  try {
    db = new Database(storePath, { readonly: true, fileMustExist: true });
    return {
      vms: db.prepare('SELECT id, name, state, slot, spec FROM vms').all() as VmRow[],
      images: db.prepare('SELECT id, name, state, spec FROM images').all() as ImageRow[],
      kernels: db.prepare('SELECT id, name, state FROM kernels').all() as KernelRow[],
    };
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    db?.close();
  }
}

/**
 * One pass over the world: every leak found. Asks the daemon for its view
 * first (`vm list`, `daemon status`), which starts it when none runs.
 */
export async function findLeaks(world: BangerWorld): Promise<Leak[]> {
  const leaks: Leak[] = [];
  const leak = (kind: LeakKind, detail: string): void => {
    leaks.push({ kind, detail });
  };
  const { layout } = world;

  const listed = await world.run(['vm', 'list', '--json']);
  if (listed.code !== 0) {
    leak('daemon', `vm list failed (exit ${listed.code}): ${listed.stderr.trim()}`);
    return leaks;
  }
  const vms = (JSON.parse(listed.stdout) as { vms: VmInfo[] }).vms;
  const status = await world.run(['daemon', 'status', '--json']);
  const pool = status.code === 0 ? (JSON.parse(status.stdout) as PingResult).network?.pool : undefined;
  if (status.code !== 0) leak('daemon', `daemon status failed (exit ${status.code}): ${status.stderr.trim()}`);

  const rows = readRows(layout.storePath);
  if (typeof rows === 'string') {
    leak('daemon', `cannot read the store: ${rows}`);
    return leaks;
  }
  const rowById = new Map(rows.vms.map((row) => [row.id, row]));
  const vmById = new Map(vms.map((vm) => [vm.id, vm]));
  const describeVm = (id: string | undefined): string => {
    if (id === undefined) return 'no VM id in its command line';
    const row = rowById.get(id);
    return row === undefined ? `VM ${id}, which has no row` : `VM ${row.name} (${id}), recorded ${row.state}`;
  };

  // QEMU: each process belongs to a running VM (the pid the daemon reports), one per VM.
  const qemus = qemuProcesses(world);
  const running = vms.filter((vm) => vm.state === 'running');
  const runningIds = new Set(running.map((vm) => vm.id));
  for (const qemu of qemus) {
    const vm = qemu.vmId === undefined ? undefined : vmById.get(qemu.vmId);
    if (vm?.state !== 'running' || vm.pid !== qemu.pid) {
      leak(
        'qemu',
        `qemu pid ${qemu.pid} (tap ${qemu.tap ?? '?'}) belongs to no running VM: ${describeVm(qemu.vmId)}${vm?.pid != null ? `, whose VMM is pid ${vm.pid}` : ''}`,
      );
    }
  }
  for (const vm of running) {
    const own = qemus.filter((q) => q.vmId === vm.id);
    if (own.length === 0) leak('vm-row', `VM ${vm.name} (${vm.id}) is listed running (pid ${vm.pid ?? 'none'}) but no qemu process of it exists`);
    if (own.length > 1) leak('qemu', `VM ${vm.name} (${vm.id}) has ${own.length} qemu processes on its disks: pids ${own.map((q) => q.pid).join(', ')}`);
  }
  const tapOf = new Map<string, string>();
  for (const qemu of qemus) {
    if (qemu.vmId !== undefined && runningIds.has(qemu.vmId) && vmById.get(qemu.vmId)?.pid === qemu.pid && qemu.tap !== undefined)
      tapOf.set(qemu.vmId, qemu.tap);
  }
  const runningTaps = new Set(tapOf.values());

  // Taps: each is a running VM's or an idle one of the pool.
  const links = world.links();
  const taps = links.filter((link) => link !== world.bridge);
  const idle = new Set(pool?.idle ?? []);
  for (const tap of taps) {
    if (!runningTaps.has(tap) && !idle.has(tap))
      leak('tap', `tap ${tap} is used by no running VM and is not an idle tap of the pool (pool idle: ${[...idle].join(', ') || 'none'})`);
  }
  const masters = linkMasters(world);
  for (const tap of taps) {
    const master = masters.get(tap);
    if (master !== world.bridge)
      leak('tap', `tap ${tap} is not attached to the bridge ${world.bridge ?? '?'} (master: ${master ?? 'none'}): no VM could use it`);
  }
  for (const qemu of qemus) {
    if (qemu.tap !== undefined && idle.has(qemu.tap))
      leak('tap', `tap ${qemu.tap} is idle in the pool while qemu pid ${qemu.pid} still has it open (${describeVm(qemu.vmId)})`);
  }
  if (pool !== undefined && pool.idle.length > pool.size)
    leak('tap', `the pool holds ${pool.idle.length} idle taps, more than its size (${pool.size}): ${pool.idle.join(', ')}`);
  for (const tap of pool?.inUse ?? []) {
    if (!runningTaps.has(tap)) leak('tap', `the pool counts tap ${tap} as in use, but no running VM's qemu uses it`);
  }

  // nftables: per-VM elements only for running VMs; no rule names a guest address.
  const config: NetworkConfig | undefined =
    world.bridge !== undefined && world.subnet !== undefined ? { bridge: world.bridge, subnet: world.subnet } : undefined;
  if (config !== undefined) {
    const table = nftTableName(config.bridge);
    const vmAt = (ip: string): VmInfo | undefined => running.find((vm) => vm.ip === ip);
    for (const [tap = '', mac = '', ip = ''] of setElements(world, 'bridge', table, 'bound')) {
      const vm = vmAt(ip);
      const slot = slotOfAddress(config, ip);
      const expectedMac = slot === undefined ? undefined : slotNetwork(config, slot).mac;
      if (vm === undefined || tapOf.get(vm.id) !== tap || expectedMac !== mac) {
        leak(
          'nft',
          `bridge ${table} set bound: element ${tap} . ${mac} . ${ip} belongs to no running VM${vm === undefined ? '' : ` (${ip} is ${vm.name}'s, on tap ${tapOf.get(vm.id) ?? '?'})`}`,
        );
      }
    }
    for (const [tap = ''] of setElements(world, 'bridge', table, 'shared')) {
      const vm = running.find((candidate) => tapOf.get(candidate.id) === tap);
      if (vm?.spec.network !== 'shared') leak('nft', `bridge ${table} set shared: tap ${tap} is no running shared VM's`);
    }
    for (const [tap = ''] of setElements(world, 'bridge', table, 'ports')) {
      if (!links.includes(tap)) leak('nft', `bridge ${table} set ports: tap ${tap} no longer exists`);
    }
    for (const [ip = ''] of setElements(world, 'ip', table, 'nat_guests')) {
      if (vmAt(ip)?.spec.nat !== true) leak('nft', `ip ${table} set nat_guests: ${ip} is no running VM with NAT`);
    }
    for (const family of ['bridge', 'ip', 'ip6']) {
      for (const rule of tableRules(world, family, table)) {
        for (const ip of rule.match(/\b\d{1,3}(?:\.\d{1,3}){3}\b/g) ?? []) {
          if (slotOfAddress(config, ip) !== undefined && vmAt(ip) === undefined)
            leak('nft', `${family} ${table}: a rule names ${ip}, no running VM's address: ${rule}`);
        }
      }
    }
  }

  // Runtime dirs: only running VMs have one.
  for (const id of entries(join(layout.runtimeDir, VMS_DIR))) {
    if (!runningIds.has(id)) leak('runtime-dir', `${join(layout.runtimeDir, VMS_DIR, id)} belongs to no running VM: ${describeVm(id)}`);
  }

  // VM dirs and rows: each dir has a row; each row is a whole VM (both disks, its host key pinned) at rest.
  for (const id of entries(layout.vmsDir)) {
    if (!rowById.has(id)) leak('vm-dir', `${join(layout.vmsDir, id)} has no row (contents: ${entries(join(layout.vmsDir, id)).join(', ') || 'empty'})`);
  }
  const knownHosts = existsSync(layout.knownHosts)
    ? readFileSync(layout.knownHosts, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];
  const pinned = new Set(knownHosts.flatMap((line) => line.split(/\s+/)[0]?.split(',') ?? []));
  for (const row of rows.vms) {
    const dir = join(layout.vmsDir, row.id);
    const missing = [VM_UPPER_DISK, VM_WORK_DISK].filter((disk) => !existsSync(join(dir, disk)));
    if (missing.length > 0) leak('vm-row', `VM ${row.name} (${row.id}, ${row.state}) lacks ${missing.join(' and ')}: a row for a VM that was never finished`);
    if (row.state === 'creating' || row.state === 'starting' || row.state === 'stopping')
      leak('vm-row', `VM ${row.name} (${row.id}) is left '${row.state}' with no operation in flight`);
    if (row.state === 'running' && !runningIds.has(row.id))
      leak('vm-row', `VM ${row.name} (${row.id}) is recorded running but the daemon does not list it running`);
    if (!vmById.has(row.id)) leak('vm-row', `VM ${row.name} (${row.id}) has a row but vm list does not show it`);
    if (config !== undefined && missing.length === 0) {
      const ip = slotNetwork(config, row.slot).guestIp;
      if (!pinned.has(ip)) leak('vm-row', `VM ${row.name} (${row.id}) has no host key pinned for ${ip}: banger could never reach it`);
    }
  }

  // known_hosts: every entry names an existing VM (by address, name or <name>.vm).
  const hostNames = new Set(rows.vms.flatMap((row) => [row.name, `${row.name}.vm`, ...(config === undefined ? [] : [slotNetwork(config, row.slot).guestIp])]));
  for (const line of knownHosts) {
    const hosts = line.split(/\s+/)[0]?.split(',') ?? [];
    const strangers = hosts.filter((host) => !hostNames.has(host));
    if (strangers.length > 0) leak('known-hosts', `entry for ${strangers.join(', ')} belongs to no VM: ${line.slice(0, 80)}`);
  }

  // banger's ssh_config lists running VMs only.
  const sshConfig = existsSync(layout.sshConfig) ? readFileSync(layout.sshConfig, 'utf8') : '';
  for (const [, name = '', ip = ''] of sshConfig.matchAll(/^Host (\S+)\.vm\n\s+HostName (\S+)$/gm)) {
    const vm = running.find((candidate) => candidate.name === name);
    if (vm?.ip !== ip) leak('ssh-config', `ssh_config lists ${name}.vm (${ip}), which is no running VM`);
  }

  // Staging dirs: none anywhere in the state dir (a finished or swept operation leaves none).
  for (const path of stagingDirs(layout.stateDir)) leak('staging', `${path} is left from an unfinished operation`);

  // Images and kernels: rows are ready and have their files; their dirs have rows.
  const imageIds = new Set(rows.images.map((row) => row.id));
  for (const row of rows.images) {
    const spec = JSON.parse(row.spec) as { rootfs?: string; managed?: boolean };
    if (row.state !== 'ready') leak('image', `image ${row.name} (${row.id}) is left '${row.state}'`);
    if (spec.managed === true && (spec.rootfs === undefined || !existsSync(spec.rootfs)))
      leak('image', `image ${row.name} (${row.id}) has no rootfs at ${spec.rootfs ?? '?'}`);
  }
  for (const id of entries(layout.imagesDir)) {
    if (!id.startsWith(STAGING_PREFIX) && !imageIds.has(id))
      leak('image', `${join(layout.imagesDir, id)} has no row (contents: ${entries(join(layout.imagesDir, id)).join(', ')})`);
  }
  const kernelIds = new Set(rows.kernels.map((row) => row.id));
  for (const row of rows.kernels) {
    if (row.state !== 'ready') leak('kernel', `kernel ${row.name} (${row.id}) is left '${row.state}'`);
    const dir = join(layout.kernelsDir, row.id);
    for (const file of [KERNEL_VMLINUX, KERNEL_INITRAMFS]) if (!existsSync(join(dir, file))) leak('kernel', `kernel ${row.name} (${row.id}) lacks ${file}`);
  }
  for (const id of entries(layout.kernelsDir)) {
    if (!id.startsWith(STAGING_PREFIX) && !kernelIds.has(id) && statSync(join(layout.kernelsDir, id)).isDirectory()) {
      leak('kernel', `${join(layout.kernelsDir, id)} has no row`);
    }
  }
  // A managed image's rootfs file is named after it; nothing else is expected in its dir.
  for (const row of rows.images) {
    const dir = join(layout.imagesDir, row.id);
    for (const name of entries(dir)) if (name !== IMAGE_ROOTFS) leak('image', `${join(dir, name)} is not part of image ${row.name}`);
  }
  return leaks;
}

/**
 * Asserts the world leaks nothing. Background work the daemon does right
 * after starting (refilling the tap pool) may still be settling, so this
 * polls until a pass finds nothing or `timeoutMs` passes (a hang guard, not
 * a timing bound), then reports every leak of the last pass.
 */
export async function assertNoLeaks(world: BangerWorld, context: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let leaks = await findLeaks(world);
  while (leaks.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    leaks = await findLeaks(world);
  }
  if (leaks.length > 0) {
    throw new Error(`${context}: ${leaks.length} leak${leaks.length === 1 ? '' : 's'}:\n${leaks.map((l) => `  - [${l.kind}] ${l.detail}`).join('\n')}`);
  }
}
