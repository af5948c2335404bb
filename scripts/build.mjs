#!/usr/bin/env node
// Builds dist/: compiles TypeScript, copies non-TS assets (SQL migrations),
// and stamps dist/build-info.json with a content hash of the built code.
// The CLI compares that build id with the running daemon's and restarts a
// stale daemon after an upgrade, so the id must change exactly when code does.
//
// Then bundles the CLI, whose start-up is on the hot path (`vm exec` is one
// CLI start plus one guest command; bench/cli measures it against
// `node -e 0`). The daemon and the tests run tsc's output instead.
//   dist/cli-main.cjs        src/cli/main.ts and everything it imports, one
//                            CommonJS file (dozens of ES modules cost ~25 ms
//                            more to load)
//   dist/cli-main.cjs.cache  V8's code cache of it, written by running one
//                            command once (`--version`)
//   dist/cli.cjs             src/cli/launch.ts: what bin/banger runs; it runs
//                            the bundle from that cache (~8 ms less per start)
//   dist/tui.mjs, mcp.mjs    the lazy entries (src/tui/run.ts of `banger tui`,
//                            src/mcp/server.ts of `banger mcp`) with ink/React
//                            and the MCP SDK/zod: ES modules, as ink's
//                            yoga-layout uses top-level await. Built only when
//                            their source exists.
// How the lazy entries stay lazy: a command imports its entry with
// `await import('../../tui/run.js')`; esbuild would inline that, so the
// lazy-imports plugin makes it external, then the bundle's
// `import("./tui.mjs")` is rewritten to a call of the import function the
// launcher installs (LAZY_IMPORT): an import() compiled inside the launcher's
// vm.Script would need --experimental-vm-modules on Node 20 and loses its
// callback with a code cache. A static import of a lazy entry fails the
// build, and so does any of their packages found in the CLI bundle.
// Banger's own modules are not copied into the lazy bundles: they take them
// from the running CLI bundle (CLI_MODULES, see fromCliBundle), so there is
// one BangerError class (instanceof in main.ts and Output), one interrupt
// signal and one list of connections to close.
// The root helper is bundled to dist/root-helper.cjs (see its comment below).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

rmSync(dist, { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], {
  stdio: 'inherit',
});
// The SDK's type declarations (package.json "types"): dist/src/sdk/index.d.ts and what it imports.
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.sdk.json')], { stdio: 'inherit' });

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

// Native addons stay packages (doctor's store check loads better-sqlite3).
const nativeAddons = ['better-sqlite3', 'ssh2', 'cpu-features'];
const src = join(dist, 'src');

/** Entry points the CLI loads only when their command runs, each bundled to a file of its own. */
const lazyEntries = [
  { entry: 'tui/run.js', outfile: 'tui.mjs' },
  { entry: 'mcp/server.js', outfile: 'mcp.mjs' },
];
/** Packages only the lazy entries may use: none of them may end up in the CLI bundle. */
const lazyOnlyPackages = ['ink', 'react', 'react-reconciler', 'yoga-layout', '@modelcontextprotocol/sdk', 'zod'];
/** Banger's modules the lazy bundles take from the CLI bundle, by path in dist/src. */
const CLI_MODULES = "globalThis[Symbol.for('banger.cliModules')]";
/** The import function src/cli/launch.ts installs; the bundle run by plain node has none and imports itself. */
const LAZY_IMPORT = "(globalThis[Symbol.for('banger.import')] ?? ((url) => import(url)))";

/** Path of a module of dist/src relative to it ('cli/context.js'), or undefined outside it. */
function srcRelative(file) {
  const rel = relative(src, file);
  return rel.startsWith('..') || isAbsolute(rel) ? undefined : rel.split(sep).join('/');
}

/**
 * esbuild plugin of a lazy bundle: banger's modules outside the entry's own
 * directory come from the running CLI bundle instead of being copied in.
 * @param {string} ownDir @param {Set<string>} shared collects them
 */
function fromCliBundle(ownDir, shared) {
  return {
    name: 'from-cli-bundle',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\// }, (args) => {
        const target = resolvePath(args.resolveDir, args.path);
        const rel = srcRelative(target);
        if (rel === undefined || target.startsWith(ownDir + sep)) return undefined;
        shared.add(rel);
        return { path: rel, namespace: 'banger-cli' };
      });
      b.onLoad({ filter: /.*/, namespace: 'banger-cli' }, (args) => ({
        loader: 'js',
        contents: `const modules = ${CLI_MODULES};
if (modules === undefined) throw new Error('this bundle runs inside the banger CLI (bin/banger) only');
module.exports = modules[${JSON.stringify(args.path)}];`,
      }));
    },
  };
}

/**
 * esbuild plugin: optional packages banger does not install (ink imports
 * react-devtools-core only with DEV=true) fail on use, as a missing package
 * does, rather than when the bundle loads.
 * @param {string[]} packages
 */
function notInstalled(packages) {
  return {
    name: 'not-installed',
    setup(b) {
      b.onResolve({ filter: new RegExp(`^(${packages.join('|')})$`) }, (args) => ({ path: args.path, namespace: 'not-installed' }));
      b.onLoad({ filter: /.*/, namespace: 'not-installed' }, (args) => ({
        loader: 'js',
        contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find package '${args.path}' (not installed with banger)`)}), { code: 'ERR_MODULE_NOT_FOUND' });`,
      }));
    },
  };
}

/**
 * esbuild plugin of the CLI bundle: the import() of a lazy entry stays an
 * import of its bundle (rewritten below); any other import of one fails.
 * @param {{ count: number }} sites counts the import() sites
 */
function lazyImports(sites) {
  return {
    name: 'lazy-imports',
    setup(b) {
      b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) => {
        const rel = srcRelative(resolvePath(args.resolveDir, args.path));
        const lazy = lazyEntries.find((e) => e.entry === rel);
        if (lazy === undefined) return undefined;
        if (args.kind !== 'dynamic-import') {
          return { errors: [{ text: `${rel} loads on use only: import it with \`await import('${args.path}')\` in its command's action` }] };
        }
        sites.count++;
        return { path: `./${lazy.outfile}`, external: true };
      });
    },
  };
}

/**
 * The CLI bundle's first module when lazy bundles take modules from it: it
 * fills CLI_MODULES, each module evaluated on first use.
 * @param {Set<string>} shared
 */
function cliModules(shared) {
  return {
    name: 'cli-modules',
    setup(b) {
      b.onResolve({ filter: /^banger:cli-modules$/ }, () => ({ path: 'cli-modules', namespace: 'banger-entry' }));
      b.onLoad({ filter: /.*/, namespace: 'banger-entry' }, () => ({
        loader: 'js',
        resolveDir: src,
        contents: [
          'const modules = Object.create(null);',
          ...[...shared]
            .sort()
            .map((rel) => `Object.defineProperty(modules, ${JSON.stringify(rel)}, { enumerable: true, get: () => require(${JSON.stringify(`./${rel}`)}) });`),
          `${CLI_MODULES} = Object.freeze(modules);`,
        ].join('\n'),
      }));
    },
  };
}

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  // src/dist-root.ts uses __filename in the bundle, import.meta.url elsewhere.
  logOverride: { 'empty-import-meta': 'silent' },
  logLevel: 'warning',
};

// The lazy bundles first: they tell which of banger's modules the CLI bundle hands them.
const shared = new Set();
for (const lazy of lazyEntries) {
  if (!existsSync(join(src, lazy.entry))) continue;
  await build({
    ...common,
    entryPoints: [join(src, lazy.entry)],
    outfile: join(dist, lazy.outfile),
    format: 'esm',
    external: nativeAddons,
    // The CommonJS packages inside call require.
    banner: { js: "import { createRequire as bangerCreateRequire } from 'node:module';\nconst require = bangerCreateRequire(import.meta.url);" },
    plugins: [fromCliBundle(join(src, dirname(lazy.entry)), shared), notInstalled(['react-devtools-core'])],
  });
}

const sites = { count: 0 };
const cli = await build({
  ...common,
  ...(shared.size === 0
    ? { entryPoints: [join(src, 'cli', 'main.js')] }
    : { stdin: { contents: "import 'banger:cli-modules';\nimport './cli/main.js';\n", resolveDir: src, sourcefile: 'cli-entry.js' } }),
  outfile: join(dist, 'cli-main.cjs'),
  format: 'cjs',
  external: nativeAddons,
  metafile: true,
  write: false,
  plugins: [lazyImports(sites), cliModules(shared)],
});
const heavy = Object.keys(cli.metafile.inputs).filter(
  (input) => lazyOnlyPackages.some((p) => input.includes(`node_modules/${p}/`)) || lazyEntries.some((e) => input.includes(`src/${dirname(e.entry)}/`)),
);
if (heavy.length > 0) {
  throw new Error(`the CLI bundle must not contain what only lazy entries use (import those with await import() in the command):\n  ${heavy.join('\n  ')}`);
}
let rewritten = 0;
const cliCode = (cli.outputFiles[0]?.text ?? '').replace(/\bimport\("\.\/((?:tui|mcp)\.mjs)"\)/g, (_, file) => {
  rewritten++;
  return `${LAZY_IMPORT}(require("node:url").pathToFileURL(require("node:path").join(__dirname, ${JSON.stringify(file)})).href)`;
});
if (rewritten !== sites.count) throw new Error(`rewrote ${rewritten} of the CLI bundle's ${sites.count} lazy import() calls`);
writeFileSync(join(dist, 'cli-main.cjs'), cliCode);

// The launcher, then the code cache, written by it (see src/cli/launch.ts).
await build({ ...common, entryPoints: [join(src, 'cli', 'launch.js')], outfile: join(dist, 'cli.cjs'), format: 'cjs' });
const warm = spawnSync(process.execPath, [join(dist, 'cli.cjs'), '--version'], {
  env: { ...process.env, BANGER_WRITE_CODE_CACHE: '1' },
  stdio: ['ignore', 'ignore', 'inherit'],
});
if (warm.status !== 0 || !existsSync(join(dist, 'cli-main.cjs.cache')))
  throw new Error(`writing the CLI's code cache failed (status ${warm.status ?? warm.signal})`);

// The root helper is bundled too: `banger system install` copies this one
// file (with build-info.json) to a root-owned directory, so the root service
// never runs code from a user-writable checkout.
await build({ ...common, entryPoints: [join(src, 'root-helper', 'main.js')], outfile: join(dist, 'root-helper.cjs'), format: 'cjs' });
console.log(`built banger ${buildInfo.version} (build ${buildInfo.buildId})`);
