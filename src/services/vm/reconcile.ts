import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { VmRecord } from '../../store/vms-repo.js';
import type { VmAttachment } from '../network/host-network.js';
import { slotNetwork } from '../network/slot.js';
import type { OpContext } from '../op-context.js';
import type { VmServiceDeps } from './vm-service.js';
import type { VmPlace } from './vm-runtime.js';

/**
 * At daemon start, before any request: every VM whose VMM still runs is
 * kept, whatever its row says (found from the OS when handles.json is
 * gone); one whose VMM died is demoted to stopped and its tap released; a
 * create that never finished (row still 'creating') is removed with its
 * files; files (and a VMM) of a VM with no row at all are removed; host
 * keys pinned for VMs that no longer exist are forgotten. Returns the VMs
 * whose stop was interrupted and is still due (see VmService.finishStops).
 */
export async function reconcileVms(deps: VmServiceDeps, placeOf: (vm: { id: string }) => VmPlace, log: OpContext['log']): Promise<VmRecord[]> {
  const live: VmAttachment[] = [];
  const stopsDue: VmRecord[] = [];
  await sweepOrphans(deps, placeOf, log);
  for (const vm of deps.vms.list()) {
    const place = placeOf(vm);
    if (vm.state === 'creating') {
      await tolerant(log, vm, 'remove an unfinished create', async () => {
        await deps.runtime.kill(place);
        deps.provisioner.remove(vm, place.vmDir, guestIp(deps, vm));
        deps.vms.delete(vm.id);
        log.info({ vm: vm.name }, 'reconcile: removed a VM whose create never finished');
      });
      continue;
    }
    const found = deps.runtime.adopt(place);
    if (found.alive) {
      const net = slotNetwork(deps.networkConfig, vm.slot);
      live.push({ tap: found.handles.tap, guestIp: net.guestIp, mac: net.mac, nat: vm.spec.nat, network: vm.spec.network });
      if (vm.state === 'stopping') stopsDue.push(vm);
      if (vm.state !== 'running') deps.vms.setState(vm.id, 'running');
      log.info({ vm: vm.name, pid: found.handles.vmm.pid }, 'reconcile: VM still running');
      continue;
    }
    if (vm.state !== 'running' && vm.state !== 'starting' && vm.state !== 'stopping' && found.leftover === undefined) continue;
    await tolerant(log, vm, 'clean up after a VM that died', async () => {
      deps.runtime.forget(place);
      await deps.network.detach(guestIp(deps, vm), found.leftover?.tap === '' ? undefined : found.leftover?.tap);
    });
    if (vm.state === 'running' || vm.state === 'starting' || vm.state === 'stopping') {
      deps.vms.setState(vm.id, 'stopped', vm.state === 'stopping' ? null : 'the VM stopped while the daemon was down');
    }
    log.info({ vm: vm.name }, 'reconcile: VM no longer running, cleaned up');
  }
  await deps.network.reconcile(live);
  const dropped = deps.provisioner.pruneHostKeys(deps.vms.list().map((vm) => ({ name: vm.name, guestIp: guestIp(deps, vm) })));
  if (dropped > 0) log.info({ entries: dropped }, 'reconcile: forgot host keys of VMs that no longer exist');
  deps.onRunningChanged?.();
  return stopsDue;
}

/**
 * Files of VMs with no record (a crash lost the record, e.g. a torn WAL
 * that took a whole create with it): the VMM, if one still runs, is killed
 * (found from /proc by its control socket) and the VM and runtime dirs are
 * removed. Their taps and NAT go with the network sweep that follows.
 */
async function sweepOrphans(deps: VmServiceDeps, placeOf: (vm: { id: string }) => VmPlace, log: OpContext['log']): Promise<void> {
  const known = new Set(deps.vms.list().map((vm) => vm.id));
  const dirs = [deps.layout.vmsDir, join(deps.layout.runtimeDir, names.VMS_DIR)];
  const orphans = new Set(dirs.flatMap((dir) => listDir(dir)).filter((id) => !id.startsWith('.') && !known.has(id)));
  for (const id of orphans) {
    const place = placeOf({ id });
    try {
      const handles = await deps.runtime.kill(place);
      rmSync(place.vmDir, { recursive: true, force: true });
      log.info({ vm_id: id, killed_pid: handles?.vmm.pid }, 'reconcile: removed the files (and VMM) of a VM with no record');
    } catch (error) {
      log.warn({ vm_id: id, err_message: error instanceof Error ? error.message : String(error) }, 'reconcile: could not remove a VM with no record');
    }
  }
}

/** Runs a reconcile step whose failure must not stop the daemon: the host side is swept by network.reconcile either way. */
async function tolerant(log: OpContext['log'], vm: VmRecord, what: string, step: () => Promise<void>): Promise<void> {
  try {
    await step();
  } catch (error) {
    log.warn({ vm: vm.name, err_message: error instanceof Error ? error.message : String(error) }, `reconcile: could not ${what}`);
  }
}

function guestIp(deps: VmServiceDeps, vm: VmRecord): string {
  return slotNetwork(deps.networkConfig, vm.slot).guestIp;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
