/**
 * bench/exec: what does `banger vm exec` cost compared to a fresh ssh?
 *
 * In one process, on one running VM:
 *   baseline  `ssh root@guest true` with banger's key (a new connection and
 *             key exchange every time: what a user without banger runs)
 *   banger    `banger vm exec <vm> -- true` (the CLI starts, asks the daemon,
 *             which runs it over its open guest connection)
 *   node      `node -e 0`, the floor of any Node CLI
 * and prints the medians, the ratio banger / baseline (target ≤ 0.3), and
 * banger's overhead over `node -e 0`. Run: npm run bench:exec [-- runs]
 */
import { spawnSync } from 'node:child_process';

import type { VmInfo } from '../src/rpc/methods.js';
import { BANGER_BIN, BangerWorld } from '../test/integration/harness.js';
import { milliseconds, report, sshCommand } from './helpers.js';

const runs = Number(process.argv[2] ?? '15');

/** Runs a command to completion and returns its wall time in ms. */
function timed(command: readonly string[], env: NodeJS.ProcessEnv): number {
  const [program = '', ...args] = command;
  const started = performance.now();
  const result = spawnSync(program, args, { stdio: 'ignore', env });
  if (result.status !== 0) throw new Error(`${command.join(' ')} exited ${result.status ?? '?'}`);
  return performance.now() - started;
}

async function main(): Promise<void> {
  const world = new BangerWorld({ sharedDownloads: true, network: true });
  try {
    console.log('preparing: a VM (the image is built on the first run)...');
    const vm = await world.json<VmInfo>(['vm', 'create', '--name', 'bench-exec'], { timeoutMs: 900_000 });
    const ssh = sshCommand(vm.ip, world.layout.sshKey, world.layout.knownHosts, 'true');
    const exec = [BANGER_BIN, 'vm', 'exec', vm.name, '--', 'true'];
    timed(exec, world.env); // warm: the daemon is up and its guest connection open

    // Interleaved, so drift in the host's speed hits all three alike.
    const baseline: number[] = [];
    const banger: number[] = [];
    const node: number[] = [];
    for (let i = 0; i < runs; i++) {
      baseline.push(timed(ssh, world.env));
      banger.push(timed(exec, world.env));
      node.push(timed([process.execPath, '-e', '0'], world.env));
    }
    console.log(`accel: ${vm.accel ?? '?'}, runs: ${runs}`);
    const b = report('baseline: fresh `ssh root@guest true`', baseline, milliseconds);
    const v = report('banger vm exec <vm> -- true', banger, milliseconds);
    const n = report('node -e 0', node, milliseconds);
    console.log(`ratio banger / baseline: ${(v / b).toFixed(2)} (target <= 0.3)`);
    console.log(`vm exec over node -e 0: +${milliseconds(v - n)} (${(v / n).toFixed(2)}x)`);
    await world.json(['vm', 'delete', vm.name]);
  } finally {
    world.close();
  }
}

await main();
