import { readFileSync } from 'node:fs';

import { BangerError } from '../rpc/errors.js';

/**
 * Subordinate user and group ids (/etc/subuid, /etc/subgid): the ranges of
 * host ids an ordinary user may map into a user namespace through the setuid
 * helpers newuidmap/newgidmap (Debian's `uidmap` package). A rootless image
 * build needs them: inside its namespace the user is root and the range
 * becomes ids 1…, so files in the image can belong to root, _apt, shadow…
 */

export const SUBUID_FILE = '/etc/subuid';
export const SUBGID_FILE = '/etc/subgid';

/**
 * Ids a build maps besides the user itself (ids 1-65535 inside the
 * namespace): Debian's system users and groups, up to nobody/nogroup (65534).
 */
export const REQUIRED_SUBORDINATE_IDS = 65_536;

export interface SubidRange {
  start: number;
  count: number;
}

/**
 * The range granted to `user` (by name or by numeric uid) in the text of a
 * subuid/subgid file: the first matching line, as util-linux's
 * `unshare --map-auto` picks it. Undefined when there is none.
 */
export function findSubidRange(text: string, user: string, uid: number): SubidRange | undefined {
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner !== user && owner !== String(uid)) continue;
    const range = { start: Number(start), count: Number(count) };
    if (Number.isSafeInteger(range.start) && Number.isSafeInteger(range.count) && range.start >= 0) return range;
  }
  return undefined;
}

export interface SubidFiles {
  subuid: string;
  subgid: string;
}

/**
 * Throws ERR_SUBUID_MISSING unless `user` has at least
 * REQUIRED_SUBORDINATE_IDS subordinate uids and gids. The hint names a range
 * that overlaps nobody else's (a range shared with another user would let
 * each reach the other's files).
 */
export function requireSubordinateIds(user: string, uid: number, files: SubidFiles = { subuid: SUBUID_FILE, subgid: SUBGID_FILE }): void {
  const uidText = readOptional(files.subuid);
  const gidText = readOptional(files.subgid);
  const problems: string[] = [];
  for (const [kind, path, text] of [
    ['uids', files.subuid, uidText],
    ['gids', files.subgid, gidText],
  ] as const) {
    const range = findSubidRange(text, user, uid);
    if (range === undefined) problems.push(`${path} grants ${user} no subordinate ${kind}`);
    else if (range.count < REQUIRED_SUBORDINATE_IDS) problems.push(`${path} grants ${user} only ${range.count} subordinate ${kind}`);
  }
  if (problems.length === 0) return;
  const start = freeRangeStart([uidText, gidText]);
  const end = start + REQUIRED_SUBORDINATE_IDS - 1;
  throw new BangerError(
    'ERR_SUBUID_MISSING',
    `building images as ${user} needs ${REQUIRED_SUBORDINATE_IDS} subordinate uids and gids: ${problems.join('; ')}`,
    {
      hint: `grant a range nobody else uses: sudo usermod --add-subuids ${start}-${end} --add-subgids ${start}-${end} ${user} (with Debian's uidmap installed: sudo apt-get install uidmap)`,
    },
  );
}

/** The first id at or above 100000 (useradd's SUB_UID_MIN) past every range these files already grant. */
export function freeRangeStart(texts: readonly string[]): number {
  let end = 100_000;
  for (const text of texts) {
    for (const line of text.split('\n')) {
      const [, start, count] = line.trim().split(':');
      const last = Number(start) + Number(count);
      if (Number.isSafeInteger(last) && last > end) end = last;
    }
  }
  return end;
}

/** A file's text, or '' when it is missing or unreadable (both mean: no ranges). */
function readOptional(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
