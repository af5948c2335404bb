/**
 * bench/cli: what does a banger CLI start cost compared to `node -e 0`?
 *
 * In one process, against a real daemon of a private world (temp XDG dirs,
 * no VM), runs alternately, `runs` times each:
 *   node -e 0                 the floor of any Node CLI
 *   banger --version          the CLI bundle loading, no daemon
 *   banger vm list            connect, ping (build id), list, render
 *   banger vm list --json     the same, rendered as JSON
 * and prints each one's median and p90, and the ratio
 * `vm list / node -e 0` (target <= 1.5). The ratio is of medians, taken
 * from interleaved runs so that other load on the host hits all alike; the
 * spread of `node -e 0` says how quiet the host was.
 * Run: npm run bench:cli [-- runs]
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';

import { BANGER_BIN, BangerWorld } from '../test/integration/harness.js';
import { milliseconds, median, percentile } from './helpers.js';

const runs = Number(process.argv[2] ?? '20');
const TARGET = 1.5;

/** Runs a command to completion and returns its wall time in ms. */
function timed(command: readonly string[], env: NodeJS.ProcessEnv): number {
  const [program = '', ...args] = command;
  const started = performance.now();
  const result = spawnSync(program, args, { stdio: 'ignore', env });
  const elapsed = performance.now() - started;
  if (result.status !== 0) throw new Error(`${command.join(' ')} exited ${result.status ?? '?'}`);
  return elapsed;
}

function line(label: string, times: readonly number[]): void {
  const m = median(times);
  const spread = `min ${milliseconds(Math.min(...times))}, p90 ${milliseconds(percentile(times, 90))}, max ${milliseconds(Math.max(...times))}`;
  console.log(`${label.padEnd(28)} median ${milliseconds(m).padStart(7)}  (${spread})`);
}

async function main(): Promise<void> {
  const world = new BangerWorld();
  try {
    const started = await world.run(['daemon', 'start']);
    if (started.code !== 0) throw new Error(`banger daemon start exited ${started.code}: ${started.stderr}`);
    const commands: [string, string[]][] = [
      ['node -e 0', [process.execPath, '-e', '0']],
      ['banger --version', [BANGER_BIN, '--version']],
      ['banger vm list', [BANGER_BIN, 'vm', 'list']],
      ['banger vm list --json', [BANGER_BIN, 'vm', 'list', '--json']],
    ];
    // Warm: the page cache holds node, the bundle and the daemon's store.
    for (let i = 0; i < 3; i++) for (const [, command] of commands) timed(command, world.env);

    const times = commands.map((): number[] => []);
    for (let i = 0; i < runs; i++) {
      commands.forEach(([, command], index) => times[index]?.push(timed(command, world.env)));
    }
    console.log(`runs: ${runs} each, interleaved; node ${process.version}; load average ${loadAverage()}`);
    commands.forEach(([label], index) => {
      line(label, times[index] ?? []);
    });
    const node = median(times[0] ?? []);
    const list = median(times[2] ?? []);
    console.log(`ratio vm list / node -e 0: ${(list / node).toFixed(2)} (target <= ${TARGET})`);
    console.log(`vm list over node -e 0: +${milliseconds(list - node)}; --version over node -e 0: +${milliseconds(median(times[1] ?? []) - node)}`);
  } finally {
    world.close();
  }
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

await main();
