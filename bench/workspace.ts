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

/**
 * Text that compresses like source code (gzip ~3.3x on the whole, ~2.6x per
 * 10 KB file; this repo's own sources: 3.5x): identifiers from a skewed
 * vocabulary, keywords, operators, a few numbers. (A tiny vocabulary would
 * compress tenfold and flatter anything that ships git objects.)
 */
function codeLikeText(bytes: number, random: () => number): string {
  const pick = (n: number): number => Math.floor(random() * n);
  const syllables =
    'ab ac al an ar be ca co de di el en er fi ge ha in is ka le li ma me mo na ne no or pa pe ra re ri ro sa se si so ta te ti to un ur va ve wa xi ya ze'.split(
      ' ',
    );
  const keywords = 'const let return if else for await function export import new this null true false async type interface'.split(' ');
  const vocabulary = Array.from({ length: 600 }, () =>
    Array.from({ length: 2 + pick(3) }, (_, i) => {
      const s = syllables[pick(syllables.length)] ?? 'x';
      return i > 0 && random() < 0.4 ? s.charAt(0).toUpperCase() + s.slice(1) : s;
    }).join(''),
  );
  const operators = [' = ', '(', ', ', '.', ' + ', ' === ', ') ', ': ', '; '];
  const word = (): string =>
    random() < 0.35
      ? (keywords[pick(keywords.length)] ?? '')
      : random() < 0.04
        ? String(pick(1000))
        : (vocabulary[Math.floor(random() ** 4 * vocabulary.length)] ?? '');
  let text = '';
  while (text.length < bytes) {
    const count = 2 + pick(7);
    let line = '  '.repeat(pick(4));
    for (let i = 0; i < count; i++) line += word() + (i < count - 1 ? (operators[pick(operators.length)] ?? ' ') : ';');
    text += line + '\n';
  }
  return text;
}

/** A repo that looks like source code: 50 directories of 100 files, one commit. */
function generateRepo(root: string): void {
  let state = 2463534242;
  const random = (): number => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const perFile = Math.floor(TOTAL_BYTES / FILES);
  for (let i = 0; i < FILES; i++) {
    const dir = join(root, `pkg${Math.floor(i / 100)}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `file${i}.ts`), codeLikeText(perFile, random));
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
    const change = await world.run(
      ['vm', 'exec', vm.name, '--', 'sh', '-c', `git ls-files | head -n ${CHANGED} | while read -r f; do echo "// changed" >> "$f"; done`],
      { timeoutMs: 600_000 },
    );
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
