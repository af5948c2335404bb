import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { BangerError } from '../rpc/errors.js';
import { findSubidRange, freeRangeStart, requireSubordinateIds } from './subids.js';

const root = mkdtempSync(join(tmpdir(), 'banger-subids-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Fake /etc/subuid and /etc/subgid with this content (undefined: the file does not exist). */
function files(subuid: string | undefined, subgid: string | undefined): { subuid: string; subgid: string } {
  const dir = mkdtempSync(join(root, 'etc-'));
  const paths = { subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
  if (subuid !== undefined) writeFileSync(paths.subuid, subuid);
  if (subgid !== undefined) writeFileSync(paths.subgid, subgid);
  return paths;
}

function subuidError(fn: () => void): BangerError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof BangerError);
    assert.equal(error.code, 'ERR_SUBUID_MISSING');
    return error;
  }
  assert.fail('expected ERR_SUBUID_MISSING');
}

test('a range is found by user name or by uid, first match wins', () => {
  const text = 'alice:100000:65536\n1001:165536:65536\nbob:231072:65536\nbob:300000:10\n';
  assert.deepEqual(findSubidRange(text, 'alice', 1000), { start: 100000, count: 65536 });
  assert.deepEqual(findSubidRange(text, 'carol', 1001), { start: 165536, count: 65536 });
  assert.deepEqual(findSubidRange(text, 'bob', 1002), { start: 231072, count: 65536 });
  assert.equal(findSubidRange(text, 'dave', 1003), undefined);
  assert.equal(findSubidRange('', 'alice', 1000), undefined);
});

test('enough subordinate uids and gids pass', () => {
  requireSubordinateIds('alice', 1000, files('alice:100000:65536\n', 'alice:100000:65536\n'));
  requireSubordinateIds('alice', 1000, files('1000:100000:131072\n', 'alice:200000:65536\n'));
});

test('missing files, missing entries and short ranges are ERR_SUBUID_MISSING, before anything runs', () => {
  const none = subuidError(() => {
    requireSubordinateIds('alice', 1000, files(undefined, undefined));
  });
  assert.match(none.message, /grants alice no subordinate uids; .* grants alice no subordinate gids/);
  assert.match(none.hint ?? '', /sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 alice/);
  assert.match(none.hint ?? '', /apt-get install uidmap/);

  const onlyUids = subuidError(() => {
    requireSubordinateIds('alice', 1000, files('alice:100000:65536\n', 'bob:100000:65536\n'));
  });
  assert.match(onlyUids.message, /grants alice no subordinate gids/);
  assert.doesNotMatch(onlyUids.message, /no subordinate uids/);

  const short = subuidError(() => {
    requireSubordinateIds('alice', 1000, files('alice:100000:1000\n', 'alice:100000:65536\n'));
  });
  assert.match(short.message, /grants alice only 1000 subordinate uids/);
});

test("the suggested range overlaps no one else's", () => {
  const error = subuidError(() => {
    requireSubordinateIds('carol', 1002, files('alice:100000:65536\nbob:165536:65536\n', 'alice:100000:65536\nbob:165536:70000\n'));
  });
  assert.match(error.hint ?? '', /--add-subuids 235536-301071 --add-subgids 235536-301071 carol/);
  assert.equal(freeRangeStart(['', 'garbage\n#comment\n']), 100000);
  assert.equal(freeRangeStart(['x:5:10\n']), 100000);
});
