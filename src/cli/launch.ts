import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { Module, createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Script } from 'node:vm';

/**
 * What bin/banger runs: scripts/build.mjs bundles this file alone to
 * dist/cli.cjs. It runs the CLI bundle (dist/cli-main.cjs, the bundle of
 * src/cli/main.ts) from V8's code cache, dist/cli-main.cjs.cache, which the
 * build writes: a CLI start then neither parses nor compiles the bundle
 * (measured: ~8 ms of a ~90 ms `banger vm list`). Node 20 caches nothing
 * itself (module.enableCompileCache is Node 22.1+).
 *
 * The cache is only an accelerator: V8 checks it against its own version
 * and flags, and a cache it rejects (another node on PATH, V8 flags in
 * NODE_OPTIONS) or a missing one costs just the compile it would have saved.
 * But V8 checks the source by its length only, and would run the old code of
 * an edited bundle of the same length: so the cache starts with a line naming
 * the bundle's size and mtime when it was written (CACHE_TAG), and is used
 * only for that very file. It is written only by the build
 * (BANGER_WRITE_CODE_CACHE=1), never by a user's command, so nothing in dist/
 * changes after `npm run build` and concurrent CLIs never race.
 *
 * This module runs only bundled, as CommonJS: __dirname is dist/.
 */
const bundle = join(__dirname, 'cli-main.cjs');
const cacheFile = `${bundle}.cache`;
/** The cache's first line: this tag, then the size and mtime (ns) of the bundle it was made from. */
const CACHE_TAG = 'banger-code-cache';

const source = readFileSync(bundle, 'utf8');
const bundleStat = statSync(bundle, { bigint: true });
const tag = `${CACHE_TAG} ${bundleStat.size} ${bundleStat.mtimeNs}\n`;
let cachedData: Buffer | undefined;
try {
  const file = readFileSync(cacheFile);
  // Anything else (another bundle's cache, none) compiles as node would.
  if (file.subarray(0, tag.length).toString('latin1') === tag) cachedData = file.subarray(tag.length);
} catch {
  cachedData = undefined;
}
const script = new Script(Module.wrap(source), {
  filename: bundle,
  ...(cachedData === undefined ? {} : { cachedData }),
});
if (process.env.BANGER_WRITE_CODE_CACHE === '1') {
  // After the command: the cache then also holds the functions it compiled on the way.
  process.on('exit', () => {
    writeFileSync(cacheFile, Buffer.concat([Buffer.from(tag, 'latin1'), script.createCachedData()]));
  });
}

// The bundle's import() of a lazy entry (dist/tui.mjs, dist/mcp.mjs) calls this: an import() compiled in the
// script above would need --experimental-vm-modules on Node 20, and a code cache loses its callback.
(globalThis as Record<symbol, unknown>)[Symbol.for('banger.import')] = (url: string): Promise<unknown> => import(url);

const mainModule = new Module(bundle);
mainModule.filename = bundle;
// The bundle's CommonJS wrapper, called as node's loader would: (exports, require, module, __filename, __dirname).
const compiled = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
compiled.call(mainModule.exports, mainModule.exports, createRequire(bundle), mainModule, bundle, dirname(bundle));
mainModule.loaded = true;
