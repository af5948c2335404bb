/**
 * bench/workspace: copying a repo into a VM, and getting a change back out.
 *
 * On one VM, with a generated repo of 5,000 files / 50 MB (source-like text):
 *   prepare   `banger vm workspace prepare` (shallow .git + tracked files)
 *             vs `git ls-files -z | tar --null -T - -c | ssh guest tar -x`
 *             over a fresh system ssh (target ratio ≤ 1.0)
 *   export    `banger vm workspace export` of a 1,000-file change
 *             vs `ssh guest git diff --binary` (target ratio ≤ 1.2)
 * Runs alternate between the two sides; medians and ratios are printed.
 * Run: npm run bench:workspace [-- runs]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { VmInfo } from '../src/rpc/methods.js';
import { git } from '../test/helpers/git-repo.js';
import { BangerWorld } from '../test/integration/harness.js';
import { q, report, sh, sshCommand } from './helpers.js';

const runs = Number(process.argv[2] ?? '3');
const FILES = 5000;
const TOTAL_BYTES = 50 * 1024 * 1024;
const CHANGED = 1000;

const WORDS = 'const let return function if else for while import export from class interface type async await new this null undefined true false string number value result error data index count list map set get push length'.split(' ');

/** A repo that looks like source code: 50 directories of 100 files of text, one commit. */
function generateRepo(root: string): void {
  let seed = 42;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const perFile = Math.floor(TOTAL_BYTES / FILES);
  for (let i = 0; i < FILES; i++) {
    const dir = join(root, `pkg${Math.floor(i / 100)}`);
    mkdirSync(dir, { recursive: true });
    const lines: string[] = [];
    let size = 0;
    while (size < perFile) {
      const line = Array.from({ length: 8 + random(8) }, () => WORDS[random(WORDS.length)]).join(' ') + ` ${random(100000)};`;
      lines.push(line);
      size += line.length + 1;
    }
    writeFileSync(join(dir, `file${i}.ts`), lines.join('\n') + '\n');
  }
  git(root, 'init', '-q');
  git(root, 'add', '-A');
  git(root, 'commit', '-q', '-m', 'generated');
}

async function main(): Promise<void> {
  const world = new BangerWorld({ sharedDownloads: true, network: true });
  const scratch = mkdtempSync(join(tmpdir(), 'banger-bench-ws-'));
  try {
    const repo = join(scratch, 'repo');
    console.log(`generating a ${FILES}-file, ${TOTAL_BYTES / 1024 / 1024} MB repo...`);
    generateRepo(repo);
    console.log('preparing: a VM (the image is built on the first run)...');
    const vm = await world.json<VmInfo>(['vm', 'create', '--name', 'bench-ws', '--disk-size', '16G'], { timeoutMs: 900_000 });
    const ssh = (command: string): string => sshCommand(vm.ip, world.layout.sshKey, world.layout.knownHosts, command).map(q).join(' ');

    const baselinePrepare: number[] = [];
    const bangerPrepare: number[] = [];
    for (let i = 0; i < runs; i++) {
      let started = performance.now();
      await sh(`git ls-files -z | tar --null -T - -c | ${ssh(`mkdir -p /root/base-${i} && tar -x -C /root/base-${i}`)}`, { cwd: repo });
      baselinePrepare.push(performance.now() - started);
      started = performance.now();
      const result = await world.run(['vm', 'workspace', 'prepare', vm.name, repo, '--guest-path', `/root/ws-${i}`], { timeoutMs: 900_000 });
      if (result.code !== 0) throw new Error(`prepare failed: ${result.stderr}`);
      bangerPrepare.push(performance.now() - started);
    }

    // A 1,000-file change in the last workspace (the one export reads).
    const workspace = `/root/ws-${runs - 1}`;
    const change = await world.run(['vm', 'exec', vm.name, '--', 'sh', '-c', `git ls-files | head -n ${CHANGED} | while read -r f; do echo "// changed" >> "$f"; done`], { timeoutMs: 600_000 });
    if (change.code !== 0) throw new Error(`changing files failed: ${change.stderr}`);
    const baselineExport: number[] = [];
    const bangerExport: number[] = [];
    for (let i = 0; i < runs; i++) {
      let started = performance.now();
      await sh(`${ssh(`cd ${workspace} && git diff --binary`)} > ${q(join(scratch, 'baseline.patch'))}`);
      baselineExport.push(performance.now() - started);
      started = performance.now();
      const result = await world.run(['vm', 'workspace', 'export', vm.name, '--output', join(scratch, 'banger.patch')], { timeoutMs: 600_000 });
      if (result.code !== 0) throw new Error(`export failed: ${result.stderr}`);
      bangerExport.push(performance.now() - started);
    }

    console.log(`accel: ${vm.accel ?? '?'}, runs: ${runs}, repo: ${FILES} files / ${TOTAL_BYTES / 1024 / 1024} MB, change: ${CHANGED} files`);
    const bp = report('baseline: git ls-files | tar | fresh ssh tar -x', baselinePrepare);
    const vp = report('banger vm workspace prepare', bangerPrepare);
    console.log(`prepare ratio banger / baseline: ${(vp / bp).toFixed(2)} (target <= 1.0)`);
    const be = report('baseline: fresh ssh git diff --binary', baselineExport);
    const ve = report('banger vm workspace export', bangerExport);
    console.log(`export ratio banger / baseline: ${(ve / be).toFixed(2)} (target <= 1.2)`);
    await world.json(['vm', 'delete', vm.name]);
  } finally {
    world.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
