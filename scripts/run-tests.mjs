#!/usr/bin/env node
// Runs the compiled tests with node's test runner, which prints the closing
// summary CI reads. Node 20 neither expands globs nor finds .ts files, so the
// file list is built here. Arguments narrow the run to files whose path
// contains any of them (e.g. `npm test -- store config`). Every test runs under
// a timeout (tests and suites may set a shorter one), so a hang fails with the
// test's name instead of stalling the run.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

/** @param {string} dir @returns {string[]} */
function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

const filters = process.argv.slice(2);
const files = walk(dist)
  .filter((f) => f.endsWith('.test.js'))
  .map((f) => relative(root, f))
  .filter((f) => filters.length === 0 || filters.some((needle) => f.includes(needle)))
  .sort();

if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

const TEST_TIMEOUT_MS = 20 * 60 * 1000;
const result = spawnSync(process.execPath, ['--test', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
