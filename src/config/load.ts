import { readFileSync } from 'node:fs';

import { BangerError, hasErrnoCode } from '../rpc/errors.js';
import { defaultConfig, parseConfig, type BangerConfig } from './schema.js';

/** Reads config.toml; a missing file means built-in defaults. */
export function loadConfig(path: string, home: string): BangerConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT')) return defaultConfig();
    throw new BangerError('ERR_CONFIG_INVALID', `${path}: cannot read: ${(error as Error).message}`, {
      cause: error,
      hint: `check the permissions of ${path}`,
    });
  }
  return parseConfig(text, { path, home });
}
