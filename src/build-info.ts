import { readFileSync } from 'node:fs';

import { distPath } from './dist-root.js';

/**
 * Version and build id of the code that is running, stamped into
 * dist/build-info.json by scripts/build.mjs. The build id is a hash of the
 * compiled code: the CLI restarts a daemon whose build id differs from its own.
 */
export interface BuildInfo {
  version: string;
  buildId: string;
}

let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached === undefined) {
    const parsed = JSON.parse(readFileSync(distPath('build-info.json'), 'utf8')) as BuildInfo;
    cached = { version: parsed.version, buildId: parsed.buildId };
  }
  return cached;
}
