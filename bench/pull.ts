/**
 * bench/pull: pulling a multi-layer image from a registry into an ext4 root.
 *
 * Against a real registry on loopback (Debian's docker-registry), with a
 * generated 3-layer image (an ~80 MB base of mixed text and binary files,
 * two layers of a few MB on top), measures in one process:
 *   banger    `banger image pull <host>/bench/multi:v1` with a cold blob
 *             cache (the image and its blobs are deleted before each run)
 *   baseline  `skopeo copy docker://… dir:…`, `tar -xzf` of each layer in
 *             order (as root) and `mkfs.ext4 -d` of that tree, sized and
 *             made as banger makes its image (4 KiB blocks, -N, 1.2x + 128 MiB)
 * Runs alternate which side goes first; medians and the ratio are printed
 * (target ratio <= 1.0). Then, with v1 in the cache, a v2 sharing v1's base
 * layer: the bytes it downloads (only its new layer and config should be);
 * and a re-pull of v1 by name, which fetches only the manifest ("up to date").
 * Run: npm run bench:pull [-- runs]
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { ImageInfo } from '../src/rpc/methods.js';
import { buildOciLayout, layoutBlob, TestRegistry } from '../test/helpers/oci-registry.js';
import { BangerWorld } from '../test/integration/harness.js';
import { q, report, seconds, sh, timeRuns } from './helpers.js';

const runs = Number(process.argv[2] ?? '3');
const MIB = 1024 * 1024;
const BLOCK = 4096;

/** A seeded xorshift generator, so the generated trees look alike from run to run. */
function xorshift(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

/** Prose-like text (gzip ~3x): words from a skewed vocabulary, some numbers, line breaks. */
function textLike(bytes: number, random: () => number, vocabulary: readonly string[]): string {
  const parts: string[] = [];
  let length = 0;
  while (length < bytes) {
    const words: string[] = [];
    const count = 4 + Math.floor(random() * 12);
    for (let i = 0; i < count; i++) {
      words.push(random() < 0.05 ? String(Math.floor(random() * 100_000)) : (vocabulary[Math.floor(random() ** 3 * vocabulary.length)] ?? 'x'));
    }
    const line = words.join(' ') + '\n';
    parts.push(line);
    length += line.length;
  }
  return parts.join('');
}

function vocabularyOf(random: () => number, size: number): string[] {
  const letters = 'etaoinshrdlcumwfgypbvkjxqz';
  return Array.from({ length: size }, () =>
    Array.from({ length: 2 + Math.floor(random() * 9) }, () => letters.charAt(Math.floor(random() ** 2 * letters.length))).join(''),
  );
}

/** Binary that compresses somewhat (like object code): random bytes from a small skewed alphabet, with zero runs. */
function binaryLike(bytes: number, random: () => number): Buffer {
  const data = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) data[i] = random() < 0.3 ? 0 : Math.floor(random() ** 2 * 256);
  return data;
}

/** `files` text files of about `perFile` bytes in directories of 100, plus `binaries` incompressible files of `binaryBytes`. */
function fillTree(
  root: string,
  prefix: string,
  seed: number,
  content: { files: number; perFile: number; binaries: number; binaryBytes: number; objects?: number },
): void {
  const random = xorshift(seed);
  const vocabulary = vocabularyOf(random, 3000);
  for (let i = 0; i < content.files; i++) {
    const dir = join(root, 'usr', 'share', prefix, `d${Math.floor(i / 100)}`);
    mkdirSync(dir, { recursive: true });
    const size = Math.floor(content.perFile * (0.25 + random() * 1.5));
    writeFileSync(join(dir, `f${i}.txt`), textLike(size, random, vocabulary));
  }
  const lib = join(root, 'usr', 'lib', prefix);
  mkdirSync(lib, { recursive: true });
  for (let i = 0; i < content.binaries; i++) writeFileSync(join(lib, `blob${i}.bin`), randomBytes(content.binaryBytes));
  for (let i = 0; i < (content.objects ?? 0); i++) writeFileSync(join(lib, `lib${i}.so`), binaryLike(256 * 1024 + Math.floor(random() * 512 * 1024), random));
}

/** The image's base: a static busybox userland and a root login (what banger needs), and ~80 MB of mixed files. */
function baseTree(root: string): void {
  for (const dir of ['bin', 'etc', 'root', 'tmp']) mkdirSync(join(root, dir), { recursive: true });
  const busybox = spawnSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).stdout.trim();
  if (busybox === '') throw new Error('busybox is not installed (apt-get install busybox-static)');
  writeFileSync(join(root, 'bin', 'busybox'), readFileSync(busybox));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  symlinkSync('busybox', join(root, 'bin', 'sh'));
  writeFileSync(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  writeFileSync(join(root, 'etc', 'group'), 'root:x:0:\n');
  fillTree(root, 'base', 2463534242, { files: 3000, perFile: 16 * 1024, binaries: 16, binaryBytes: MIB, objects: 40 });
}

/** What a union of trees needs in ext4, as banger sizes its images: blocks and inodes, 1.2x plus 128 MiB; -N with 20% spare. */
function ext4Size(trees: readonly string[]): { sizeMiB: number; inodes: number } {
  let bytes = 0;
  let inodes = 0;
  const walk = (path: string): void => {
    const stat = lstatSync(path);
    inodes++;
    bytes += 256;
    if (stat.isDirectory()) {
      bytes += BLOCK;
      for (const name of readdirSync(path)) walk(join(path, name));
    } else if (stat.isFile()) bytes += Math.ceil(stat.size / BLOCK) * BLOCK;
  };
  for (const tree of trees) walk(tree);
  return { sizeMiB: Math.ceil((bytes * 1.2 + 128 * MIB) / MIB), inodes: Math.ceil(inodes * 1.2) + 1024 };
}

interface Manifest {
  config: { digest: string; size: number };
  layers: { digest: string; size: number }[];
}

const hexOf = (digest: string): string => digest.replace(/^sha256:/, '');

/** Blob files (name -> size) in banger's blob cache. */
function cachedBlobs(cache: string): Map<string, number> {
  const dir = join(cache, 'blobs', 'sha256');
  const blobs = new Map<string, number>();
  if (!existsSync(dir)) return blobs;
  for (const name of readdirSync(dir)) blobs.set(name, statSync(join(dir, name)).size);
  return blobs;
}

async function main(): Promise<void> {
  const scratch = mkdtempSync(join(tmpdir(), 'banger-bench-pull-'));
  let registry: TestRegistry | undefined;
  let world: BangerWorld | undefined;
  // The blob cache is the shared download cache (sharedDownloads), which tests may be using right now: only this
  // bench's blobs are ever removed from it, never the directory.
  let cache = '';
  const ours = new Set<string>();
  const forget = (digests: Iterable<string>): void => {
    for (const digest of digests) {
      rmSync(join(cache, 'blobs', 'sha256', hexOf(digest)), { force: true });
      rmSync(join(cache, 'partial', hexOf(digest)), { force: true });
    }
  };
  try {
    console.log('generating the image trees and layouts...');
    const trees = { base: join(scratch, 'base'), mid: join(scratch, 'mid'), top: join(scratch, 'top'), extra: join(scratch, 'extra') };
    baseTree(trees.base);
    fillTree(trees.mid, 'mid', 88172645, { files: 800, perFile: 4 * 1024, binaries: 1, binaryBytes: MIB, objects: 4 });
    fillTree(trees.top, 'top', 1234567, { files: 200, perFile: 4 * 1024, binaries: 2, binaryBytes: MIB });
    fillTree(trees.extra, 'extra', 7654321, { files: 500, perFile: 4 * 1024, binaries: 1, binaryBytes: MIB / 2 });
    const v1Layout = join(scratch, 'layout-v1');
    const v2Layout = join(scratch, 'layout-v2');
    const v1Desc = buildOciLayout(v1Layout, 'v1', [trees.base, trees.mid, trees.top]);
    const v2Desc = buildOciLayout(v2Layout, 'v2', [trees.base, trees.extra]);
    const v1 = JSON.parse(layoutBlob(v1Layout, v1Desc.digest).toString('utf8')) as Manifest;
    const v2 = JSON.parse(layoutBlob(v2Layout, v2Desc.digest).toString('utf8')) as Manifest;
    const v1Blobs = [v1.config.digest, ...v1.layers.map((l) => l.digest)];
    const v2Blobs = [v2.config.digest, ...v2.layers.map((l) => l.digest)];
    for (const digest of [...v1Blobs, ...v2Blobs]) ours.add(digest);
    if (v1.layers[0]?.digest !== v2.layers[0]?.digest) console.log('WARNING: the base layers of v1 and v2 differ; the shared-base case measures nothing');
    const v1LayerBytes = v1.layers.reduce((sum, l) => sum + l.size, 0);
    const v2LayerBytes = v2.layers.reduce((sum, l) => sum + l.size, 0);
    const geometry = ext4Size([trees.base, trees.mid, trees.top]);

    registry = await TestRegistry.start();
    registry.push(v1Layout, 'v1', 'bench/multi');
    registry.push(v2Layout, 'v2', 'bench/multi');
    const ref = (tag: string): string => `${registry?.host ?? ''}/bench/multi:${tag}`;

    world = await BangerWorld.create({ sharedDownloads: true });
    cache = join(world.layout.cacheDir, 'oci');
    const w = world;
    console.log('preparing: the kernel (cached after the first run) and one untimed pull...');
    await w.json(['kernel', 'pull', 'debian-bookworm-cloud'], { timeoutMs: 900_000 });
    forget(ours);
    await w.json(['image', 'pull', ref('v1'), '--name', 'bench-multi'], { timeoutMs: 900_000 });

    // One timed run of each side (timeRuns with one run: the loop below alternates which goes first).
    const pullBanger = async (): Promise<number[]> =>
      timeRuns(1, async () => {
        const result = await w.run(['image', 'pull', ref('v1'), '--name', 'bench-multi'], { timeoutMs: 900_000 });
        if (result.code !== 0) throw new Error(`banger image pull failed (${result.code ?? '?'}):\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
      });
    const pullBaseline = async (run: number): Promise<number[]> => {
      const out = join(scratch, `baseline-${run}`);
      mkdirSync(join(out, 'tree'), { recursive: true });
      const times = await timeRuns(1, async () => {
        await sh(`skopeo copy --quiet --src-tls-verify=false ${q(`docker://${ref('v1')}`)} ${q(`dir:${join(out, 'dir')}`)}`);
        const manifest = JSON.parse(readFileSync(join(out, 'dir', 'manifest.json'), 'utf8')) as Manifest;
        const unpack = manifest.layers.map((l) => `tar -xzf ${q(join(out, 'dir', hexOf(l.digest)))} -C ${q(join(out, 'tree'))} --numeric-owner`);
        const mkfs = `mkfs.ext4 -q -F -b 4096 -N ${geometry.inodes} -E lazy_itable_init=0 -d ${q(join(out, 'tree'))} ${q(join(out, 'rootfs.ext4'))} ${geometry.sizeMiB}M`;
        await sh(['set -e', ...unpack, mkfs].join('\n'));
      });
      rmSync(out, { recursive: true, force: true });
      return times;
    };

    const bangerTimes: number[] = [];
    const baselineTimes: number[] = [];
    for (let run = 0; run < runs; run++) {
      // Cold for banger: no image of that name, none of its blobs cached.
      await w.json(['image', 'delete', 'bench-multi']);
      forget(v1Blobs);
      if (run % 2 === 0) {
        baselineTimes.push(...(await pullBaseline(run)));
        bangerTimes.push(...(await pullBanger()));
      } else {
        bangerTimes.push(...(await pullBanger()));
        baselineTimes.push(...(await pullBaseline(run)));
      }
    }

    const image = await w.json<ImageInfo>(['image', 'show', 'bench-multi']);
    console.log(
      `runs: ${runs}, image: ${v1.layers.length} layers, ${(v1LayerBytes / MIB).toFixed(1)} MiB compressed` +
        ` (${v1.layers.map((l) => (l.size / MIB).toFixed(1)).join(' + ')}), ext4 ${geometry.sizeMiB} MiB (banger's: ${Math.round(image.sizeBytes / MIB)} MiB)`,
    );
    const b = report('baseline: skopeo copy + tar -xzf layers + mkfs.ext4 -d', baselineTimes);
    const v = report('banger image pull (cold blob cache)', bangerTimes);
    console.log(`ratio banger / baseline: ${(v / b).toFixed(2)} (target <= 1.0)`);

    // v2: v1's base layer plus a new one; with v1's blobs cached only the rest should come over the wire.
    forget(v2Blobs.filter((d) => !v1Blobs.includes(d)));
    const before = cachedBlobs(cache);
    let started = performance.now();
    const second = await w.run(['image', 'pull', ref('v2'), '--name', 'bench-multi2', '--json'], { timeoutMs: 900_000 });
    const secondMs = performance.now() - started;
    if (second.code !== 0) throw new Error(`banger image pull of v2 failed (${second.code ?? '?'}):\nstdout: ${second.stdout}\nstderr: ${second.stderr}`);
    let downloaded = 0;
    let newBlobs = 0;
    for (const [name, size] of cachedBlobs(cache)) {
      if (!before.has(name)) {
        downloaded += size;
        newBlobs++;
      }
    }
    const published = w.logLines().filter((l) => l.msg === 'image published' && l.image === 'bench-multi2');
    const logged = published.at(-1)?.downloaded;
    console.log(
      `second pull (shared base): downloaded ${downloaded} bytes of ${v2LayerBytes} total layer bytes` +
        ` (${newBlobs} new blobs; daemon log says ${typeof logged === 'number' ? logged : '?'}; base layer ${v2.layers[0]?.size ?? '?'} bytes) in ${seconds(secondMs)}`,
    );

    // v1 again by name: the manifest only.
    started = performance.now();
    const third = await w.run(['image', 'pull', 'bench-multi'], { timeoutMs: 300_000 });
    const thirdMs = performance.now() - started;
    if (third.code !== 0) throw new Error(`banger image pull bench-multi failed (${third.code ?? '?'}):\nstdout: ${third.stdout}\nstderr: ${third.stderr}`);
    const upToDate = third.stdout.includes('up to date');
    console.log(`third pull (bench-multi again): ${third.stdout.trim()} in ${seconds(thirdMs)}${upToDate ? '' : '  (NOT "up to date")'}`);
  } finally {
    if (cache !== '') forget(ours);
    world?.close();
    registry?.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

await main();
