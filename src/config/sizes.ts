import { BangerError } from '../rpc/errors.js';
import { parseSizeOrUndefined } from '../rpc/sizes.js';

// Size parsing lives with the other input rules in src/rpc (the CLI and an SDK use it too).
export { formatSize, parseSizeOrUndefined } from '../rpc/sizes.js';

/** Like parseSizeOrUndefined, but a malformed size is an ERR_INVALID_ARGUMENT. */
export function parseSize(text: string): number {
  const bytes = parseSizeOrUndefined(text);
  if (bytes === undefined) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `invalid size "${text}"`, { hint: 'use a number with a unit: 512M, 8G, 1T' });
  }
  return bytes;
}
