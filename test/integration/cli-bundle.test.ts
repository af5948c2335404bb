import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { Module } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { after, before, describe, test } from 'node:test';

import { BANGER_BIN, BangerWorld, REPO_ROOT } from './harness.js';

/**
 * The CLI as scripts/build.mjs ships it: bin/banger → dist/cli.cjs (the
 * launcher) → dist/cli-main.cjs from its V8 code cache, with the heavy
 * packages of `banger tui` and `banger mcp` in bundles of their own that
 * load only for those commands.
 */
const DIST = join(REPO_ROOT, 'dist');
const BUNDLE = join(DIST, 'cli-main.cjs');
/** Packages only `banger tui` / `banger mcp` may load. */
const HEAVY = /node_modules\/(ink|react|react-reconciler|yoga-layout|@modelcontextprotocol\/sdk|zod)\//;
const LAZY = [
  { source: join(DIST, 'src', 'tui', 'run.js'), bundle: join(DIST, 'tui.mjs') },
  { source: join(DIST, 'src', 'mcp', 'server.js'), bundle: join(DIST, 'mcp.mjs') },
];

/**
 * A --require hook that records what a CLI run loads: every CommonJS module
 * (with the packages they come from) and every lazy bundle imported through
 * the launcher's import function (src/cli/launch.ts), written as JSON at exit.
 */
const RECORDER = `
const Module = require('node:module');
const { writeFileSync } = require('node:fs');
const loaded = { required: [], imported: [] };
const load = Module._load;
Module._load = function (request, parent, isMain) {
  loaded.required.push(Module._resolveFilename(request, parent, isMain));
  return load.apply(this, arguments);
};
let importer;
Object.defineProperty(globalThis, Symbol.for('banger.import'), {
  configurable: true,
  get: () => importer && ((url) => (loaded.imported.push(url), importer(url))),
  set: (f) => { importer = f; },
});
process.on('exit', () => writeFileSync(process.env.BANGER_TEST_LOADED, JSON.stringify(loaded)));
`;

interface Loaded {
  required: string[];
  imported: string[];
}

describe('the CLI bundle', () => {
  let world: BangerWorld;
  let hook: string;
  before(() => {
    world = new BangerWorld();
    hook = join(world.root, 'record-loads.cjs');
    writeFileSync(hook, RECORDER);
  });
  after(() => {
    world.close();
  });

  /** Runs bin/banger with the recorder; returns its exit status, output and what it loaded. */
  function runRecorded(args: string[]): { status: number | null; stdout: string; loaded: Loaded } {
    const record = join(world.root, `loaded-${args.join('-')}.json`);
    const result = spawnSync(BANGER_BIN, args, {
      env: { ...world.env, NODE_OPTIONS: `--require ${hook}`, BANGER_TEST_LOADED: record },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    return { status: result.status, stdout: result.stdout, loaded: JSON.parse(readFileSync(record, 'utf8')) as Loaded };
  }

  for (const args of [['--version'], ['vm', 'list', '--help'], ['--help']]) {
    test(`banger ${args.join(' ')} loads neither ink, React, the MCP SDK, zod nor a lazy bundle`, { timeout: 60_000 }, () => {
      const { status, loaded } = runRecorded(args);
      assert.equal(status, 0);
      // The launcher runs the bundle itself (from the code cache); the bundle's requires (commander's child_process) go through node's loader.
      assert.ok(
        loaded.required.includes(join(DIST, 'cli.cjs')) && loaded.required.includes('node:child_process'),
        `the recorder sees the CLI load: ${loaded.required.join(', ')}`,
      );
      assert.deepEqual(
        loaded.required.filter((file) => HEAVY.test(file) || file.endsWith('.mjs')),
        [],
      );
      assert.deepEqual(loaded.imported, []);
    });
  }

  const mcp = LAZY[1];
  test(
    'banger mcp imports its bundle (the recorder sees lazy imports)',
    { timeout: 60_000, skip: mcp !== undefined && existsSync(mcp.source) ? false : 'no MCP server in this build' },
    () => {
      const { loaded } = runRecorded(['mcp']); // stdin is /dev/null: the server ends at once
      assert.deepEqual(
        loaded.imported.map((url) => new URL(url).pathname),
        [mcp?.bundle],
      );
      assert.deepEqual(
        loaded.required.filter((file) => HEAVY.test(file)),
        [],
        'its packages are inside its bundle',
      );
    },
  );

  test('the CLI bundle holds none of the packages of the lazy entries, nor their code', { timeout: 60_000 }, () => {
    const text = readFileSync(BUNDLE, 'utf8');
    assert.doesNotMatch(text, HEAVY);
    assert.doesNotMatch(text, /\/\/ dist\/src\/(tui|mcp)\//);
  });

  for (const lazy of LAZY) {
    const name = lazy.bundle.slice(DIST.length + 1);
    test(
      `${name} is built next to the CLI bundle, without copies of banger's shared modules`,
      { timeout: 60_000, skip: existsSync(lazy.source) ? false : `no ${lazy.source} in this build` },
      () => {
        const text = readFileSync(lazy.bundle, 'utf8');
        // One BangerError class for the whole process: the lazy bundle takes rpc/errors.js from the CLI bundle.
        assert.doesNotMatch(text, /\/\/ dist\/src\/rpc\/errors\.js/);
        assert.match(text, /banger\.cliModules/);
      },
    );
  }

  /** The V8 data of a code cache written by src/cli/launch.ts (after its first line, the tag naming the bundle). */
  function v8Data(cacheFile: string): Buffer {
    const file = readFileSync(cacheFile);
    return file.subarray(file.indexOf('\n') + 1);
  }

  test('the code cache the build wrote is for this bundle, and one this node accepts', { timeout: 60_000 }, () => {
    const stat = statSync(BUNDLE, { bigint: true });
    const cache = readFileSync(`${BUNDLE}.cache`);
    assert.equal(cache.subarray(0, cache.indexOf('\n')).toString(), `banger-code-cache ${stat.size} ${stat.mtimeNs}`);
    // Exactly what src/cli/launch.ts compiles.
    const script = new Script(Module.wrap(readFileSync(BUNDLE, 'utf8')), { filename: BUNDLE, cachedData: v8Data(`${BUNDLE}.cache`) });
    assert.equal(script.cachedDataRejected, false);
  });

  test('an edited bundle runs as edited, not as its code cache (which V8 would take: it checks the length only)', { timeout: 60_000 }, () => {
    const copy = join(world.root, 'dist-copy');
    mkdirSync(copy);
    for (const file of ['cli.cjs', 'cli-main.cjs', 'cli-main.cjs.cache', 'build-info.json']) {
      cpSync(join(DIST, file), join(copy, file), { preserveTimestamps: true });
    }
    const bundle = join(copy, 'cli-main.cjs');
    const original = readFileSync(bundle, 'utf8');
    const edited = original.replace('(build ${buildInfo().buildId})', '(BUILD ${buildInfo().buildId})');
    assert.equal(edited.length, original.length);
    assert.notEqual(edited, original, 'the version line is in the bundle');
    writeFileSync(bundle, edited);
    const unchecked = new Script(Module.wrap(edited), { filename: bundle, cachedData: v8Data(`${bundle}.cache`) });
    assert.equal(unchecked.cachedDataRejected, false, 'V8 alone would run the old code');
    const result = spawnSync(process.execPath, [join(copy, 'cli.cjs'), '--version'], { env: world.env, encoding: 'utf8', timeout: 60_000 });
    assert.match(result.stdout, /\(BUILD [0-9a-f]{16}\)/, result.stderr);
  });

  test('bin/banger finds its package from a relative path and through sh', { timeout: 60_000 }, () => {
    for (const [command, args, cwd] of [
      ['./banger', ['--version'], join(REPO_ROOT, 'bin')],
      ['sh', ['bin/banger', '--version'], REPO_ROOT],
      ['../bin/banger', ['--version'], join(REPO_ROOT, 'docs')],
    ] as const) {
      const result = spawnSync(command, args, { cwd, env: world.env, encoding: 'utf8', timeout: 60_000 });
      assert.match(result.stdout, /^banger \d+\.\d+\.\d+ \(build [0-9a-f]{16}\)$/m, `${command} ${args.join(' ')} in ${cwd}: ${result.stderr}`);
    }
  });
});
