import { posix } from 'node:path';

import { BangerError } from '../rpc/errors.js';

export const DEFAULT_GUEST_PATH = '/root/repo';

/** Characters a guest path may use: no shell metacharacters, no spaces, nothing that needs quoting. */
const SAFE_COMPONENT = /^[A-Za-z0-9._+@-]+$/;

/**
 * A workspace lives under /root (the VM's work disk, kept across restarts),
 * never at /root itself (that would mix the repo with /root/.ssh), and its
 * path is plain enough to need no quoting (banger quotes it anyway).
 */
export function validateGuestPath(path: string): string {
  const refuse = (why: string): never => {
    throw new BangerError('ERR_GUEST_PATH_INVALID', `guest path "${path}" ${why}`, {
      hint: `use a directory under /root made of letters, digits and . _ + @ - (default ${DEFAULT_GUEST_PATH})`,
    });
  };
  if (!path.startsWith('/')) refuse('is not absolute');
  const parts = path.split('/').slice(1);
  if (parts.at(-1) === '') parts.pop();
  if (parts[0] !== 'root') refuse('is outside /root');
  if (parts.length < 2) refuse('is /root itself');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..') refuse('has an empty, "." or ".." component');
    if (!SAFE_COMPONENT.test(part)) refuse('has characters that are not allowed (shell metacharacters, spaces or control characters)');
    if (part.startsWith('-')) refuse('has a component starting with "-"');
    if (part.startsWith('.banger-')) refuse('uses the .banger- prefix banger keeps for itself');
  }
  return posix.join('/', ...parts);
}
