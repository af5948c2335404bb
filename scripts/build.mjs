#!/usr/bin/env node
// Builds dist/: compiles TypeScript, copies non-TS assets (SQL migrations),
// and stamps dist/build-info.json with a content hash of the built code.
// The CLI compares that build id with the running daemon's and restarts a
// stale daemon after an upgrade, so the id must change exactly when code does.
// Finally bundles the CLI into dist/cli.cjs: the CLI starts for every command
// (`vm exec` is one CLI start plus one guest command), and one CommonJS file
// loads faster than dozens of ES modules (measured: ~25 ms of a ~110 ms
// `banger --version`). bin/banger runs it; the daemon and the tests run tsc's
// output.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});

/** @param {string} dir @returns {string[]} */
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const assetSuffixes = ['.sql', '.sh', '.init'];
for (const file of walk(join(root, 'src'))) {
  if (assetSuffixes.some((s) => file.endsWith(s))) {
    const target = join(dist, 'src', relative(join(root, 'src'), file));
    mkdirSync(dirname(target), { recursive: true });
    cpSync(file, target);
  }
}

const hash = createHash('sha256');
for (const file of walk(join(dist, 'src')).sort()) {
  if (file.endsWith('.map') || file.endsWith('.test.js')) continue;
  hash.update(relative(dist, file));
  hash.update(readFileSync(file));
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const buildInfo = { version: pkg.version, buildId: hash.digest('hex').slice(0, 16) };
writeFileSync(join(dist, 'build-info.json'), JSON.stringify(buildInfo, null, 2) + '\n');

/** @param {string} entry @param {string} outfile @param {string[]} external */
function bundle(entry, outfile, external = []) {
  return build({
    entryPoints: [join(dist, 'src', ...entry.split('/'))],
    outfile: join(dist, outfile),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    external,
    // src/dist-root.ts uses __filename in the bundle, import.meta.url elsewhere.
    logOverride: { 'empty-import-meta': 'silent' },
    logLevel: 'warning',
  });
}

// Native addons stay packages (doctor's store check loads better-sqlite3).
await bundle('cli/main.js', 'cli.cjs', ['better-sqlite3', 'ssh2', 'cpu-features']);
// The root helper is bundled too: `banger system install` copies this one
// file (with build-info.json) to a root-owned directory, so the root service
// never runs code from a user-writable checkout.
await bundle('root-helper/main.js', 'root-helper.cjs');
console.log(`built banger ${buildInfo.version} (build ${buildInfo.buildId})`);
