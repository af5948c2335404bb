import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The built tree's root (dist/): the directory that holds build-info.json,
 * found by walking up from this module. The answer is the same whether the
 * code runs from tsc's output (dist/src/…) or from the CLI bundle
 * (dist/cli-main.cjs, see scripts/build.mjs), so files that ship next to the code
 * (build info, the daemon entry point, migrations) are found from either.
 */
let cached: string | undefined;

export function distRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(thisFile());
  for (let depth = 0; depth < 4; depth++) {
    if (existsSync(join(dir, 'build-info.json'))) return (cached = dir);
    dir = dirname(dir);
  }
  throw new Error(`no build-info.json above ${thisFile()}: run the build (npm run build)`);
}

/** This module's file: import.meta.url as an ES module, __filename inside the CommonJS CLI bundle. */
function thisFile(): string {
  return typeof __filename === 'string' ? __filename : fileURLToPath(import.meta.url);
}

/** A path inside dist/, e.g. distPath('src', 'daemon', 'main.js'). */
export function distPath(...parts: string[]): string {
  return join(distRoot(), ...parts);
}
