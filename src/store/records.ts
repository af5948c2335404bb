import { randomBytes } from 'node:crypto';

import { BangerError } from '../rpc/errors.js';

/** New object ids: 16 hex digits (64 random bits), shown in full; prefixes work for lookups. */
export function newId(): string {
  return randomBytes(8).toString('hex');
}

export function nowIso(): string {
  return new Date().toISOString();
}

interface Named {
  id: string;
  name: string;
}

/**
 * Resolves a user's reference to one object: an exact id or exact name wins,
 * otherwise a unique id or name prefix. No match is ERR_NOT_FOUND; several
 * are ERR_AMBIGUOUS, listing them. (Uniqueness checks on create use exact
 * names only: a new name may well prefix an existing one.)
 */
export function resolveRef<T extends Named>(rows: readonly T[], ref: string, kind: string): T {
  const exact = rows.find((row) => row.id === ref || row.name === ref);
  if (exact !== undefined) return exact;
  const matches = ref === '' ? [] : rows.filter((row) => row.id.startsWith(ref) || row.name.startsWith(ref));
  if (matches.length === 1 && matches[0] !== undefined) return matches[0];
  if (matches.length === 0) {
    throw new BangerError('ERR_NOT_FOUND', `no ${kind} matches "${ref}"`, { hint: `list them with \`banger ${kind} list\`` });
  }
  throw new BangerError('ERR_AMBIGUOUS', `"${ref}" matches ${matches.length} ${kind}s: ${matches.map((m) => `${m.name} (${m.id})`).join(', ')}`, {
    hint: 'use more of the name or id',
  });
}
