import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { VMS_DIR } from '../../src/config/filenames.js';
import { nftTableName } from '../../src/root-helper/policy.js';
import type { FailpointName } from '../../src/services/failpoints.js';
import type { VmInfo } from '../../src/rpc/methods.js';
import { BangerWorld, processAlive, waitFor, type CliResult } from '../integration/harness.js';
import { qemuProcesses } from '../helpers/leaks.js';

/**
 * Shared pieces of the fault suite (test/faults): worlds whose banger runs
 * as root with a bridge and subnet of their own (as the e2e suites do), a
 * daemon crashed at a named failpoint, and a scrub between cases so that one
 * case's failure does not show up as leaks in the next.
 */

/** Guest memory for fault-suite VMs: enough for the minimal init and sshd, small enough for many TCG guests at once. */
export const VM_MEMORY = '256M';

/** A world with its own bridge and subnet, the catalog kernel pulled (downloads come from the shared cache). */
export async function faultWorld(): Promise<BangerWorld> {
  const world = await BangerWorld.create({ sharedDownloads: true, network: true });
  await world.pullCatalogKernel();
  return world;
}

/** Pulls the catalog image (built with mmdebstrap; its .debs come from the shared cache). */
export async function pullImage(world: BangerWorld): Promise<void> {
  await world.json(['image', 'pull', 'debian-bookworm'], { timeoutMs: 900_000 });
}

/** Creates a VM (booted unless `noStart`) with the suite's small memory. */
export function createVm(world: BangerWorld, name: string, options: { noStart?: boolean; extra?: string[] } = {}): Promise<VmInfo> {
  return world.json<VmInfo>(
    ['vm', 'create', '--name', name, '--memory', VM_MEMORY, ...(options.noStart === true ? ['--no-start'] : []), ...(options.extra ?? [])],
    {
      timeoutMs: 300_000,
    },
  );
}

export async function listVms(world: BangerWorld): Promise<VmInfo[]> {
  return (await world.json<{ vms: VmInfo[] }>(['vm', 'list'])).vms;
}

/** The daemon log's text (the daemon's stdout and stderr are appended to it too, so a failpoint's line is there). */
export function daemonLogText(world: BangerWorld): string {
  try {
    return readFileSync(world.layout.daemonLog, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Runs `banger <args>` against a fresh daemon armed with `failpoint`: any
 * running daemon is stopped first, so the command auto-starts one that
 * inherits BANGER_FAILPOINTS, and that daemon SIGKILLs itself at the point.
 * Asserts the crash happened there (the failpoint's line in the daemon log,
 * no daemon left) and that the CLI reported the lost daemon with an error
 * code rather than hanging. The next command, run without the variable,
 * starts a fresh daemon that must reconcile.
 */
export async function crashAt(world: BangerWorld, failpoint: FailpointName, args: readonly string[]): Promise<CliResult> {
  await world.stopDaemon();
  const logBefore = daemonLogText(world).length;
  const result = await world.run(args, { env: { BANGER_FAILPOINTS: failpoint }, timeoutMs: 900_000 });
  const logged = daemonLogText(world).slice(logBefore);
  assert.match(logged, new RegExp(`failpoint ${failpoint.replace('.', '\\.')}: killing (\\d+)`), `the daemon reached failpoint ${failpoint}\n${result.stderr}`);
  const pid = Number(/failpoint \S+: killing (\d+)/.exec(logged)?.[1]);
  await waitFor('the crashed daemon to be gone', () => !processAlive(pid));
  assert.notEqual(result.code, 0, `banger ${args.join(' ')} cannot succeed when its daemon died mid-request`);
  assert.match(result.stderr, /error\[ERR_[A-Z_]+\]/, `the CLI reports the lost daemon with an error code:\n${result.stderr}`);
  return result;
}

/**
 * Polls `vm exec <vm> -- true` until it succeeds: a VM adopted while its
 * guest was still booting answers SSH a few seconds later. The deadline only
 * guards against a hang.
 */
export async function waitUntilExecWorks(world: BangerWorld, vm: string, timeoutMs = 180_000): Promise<void> {
  let last: CliResult | undefined;
  try {
    await waitFor(
      `vm exec ${vm} to work`,
      async () => {
        last = await world.run(['vm', 'exec', vm, '--', 'true']);
        return last.code === 0;
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${error instanceof Error ? error.message : String(error)}; last attempt: exit ${last?.code}, ${last?.stderr.trim()}`, { cause: error });
  }
}

/** QEMU processes of the world that run the VM `id`. */
export function qemuOf(world: BangerWorld, id: string): number[] {
  return qemuProcesses(world)
    .filter((q) => q.vmId === id)
    .map((q) => q.pid);
}

/**
 * After a case, whatever it left (when it failed half-way, or found a
 * leak): deletes every VM through banger, kills any QEMU of the world that
 * is left, SIGKILLs the daemon so the next case starts from a daemon that
 * reconciled the host network, and removes VM and runtime dirs, host key
 * pins and taps that are left (no VM exists any more). Only keeps cases independent; the
 * case's own leak check has already run.
 */
export async function scrub(world: BangerWorld): Promise<void> {
  const listed = await world.run(['vm', 'list', '--json']);
  if (listed.code === 0) {
    for (const vm of (JSON.parse(listed.stdout) as { vms: VmInfo[] }).vms) await world.run(['vm', 'delete', vm.id]);
  }
  for (const pid of world.vmmPids()) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  await world.killDaemon().catch(() => undefined);
  // What banger could not delete (dirs and host key pins of VMs with no row) would show up as the next case's leaks.
  for (const dir of [world.layout.vmsDir, join(world.layout.runtimeDir, VMS_DIR)]) {
    for (const entry of existsSync(dir) ? readdirSync(dir) : []) rmSync(join(dir, entry), { recursive: true, force: true });
  }
  if (existsSync(world.layout.knownHosts)) writeFileSync(world.layout.knownHosts, '');
  // No VM is left, so no tap is in use: the next daemon makes its pool afresh (a tap a crash left half made stays out),
  // and banger's per-tap and per-VM nftables sets are emptied with them.
  for (const tap of world.links().filter((link) => link !== world.bridge)) {
    spawnSync('ip', [...(world.netns === undefined ? [] : ['-n', world.netns]), 'link', 'del', tap]);
  }
  if (world.bridge !== undefined) {
    const table = nftTableName(world.bridge);
    for (const set of ['ports', 'bound', 'shared']) world.nft('flush', 'set', 'bridge', table, set);
    world.nft('flush', 'set', 'ip', table, 'nat_guests');
  }
}
