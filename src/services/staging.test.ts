import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import { publishStaged } from './staging.js';

const root = mkdtempSync(join(tmpdir(), 'banger-staging-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

test('a published build is renamed into place and recorded', async () => {
  const parent = join(root, 'published');
  const recorded = await publishStaged(
    parent,
    'k1',
    (staging) => {
      writeFileSync(join(staging, 'vmlinux'), 'x');
      return Promise.resolve('built');
    },
    (final, built) => `${final}:${built}`,
  );
  assert.equal(recorded, `${join(parent, 'k1')}:built`);
  assert.deepEqual(readdirSync(parent), ['k1']);
  assert.deepEqual(readdirSync(join(parent, 'k1')), ['vmlinux']);
});

test('a failed first build leaves no parent dir behind', async () => {
  const parent = join(root, 'first');
  await assert.rejects(
    publishStaged(
      parent,
      'k1',
      () => Promise.reject(new Error('not a kernel')),
      () => undefined,
    ),
    /not a kernel/,
  );
  assert.equal(existsSync(parent), false);
});

test('a failed record step removes the published dir, and the parent it created', async () => {
  const parent = join(root, 'record');
  await assert.rejects(
    publishStaged(
      parent,
      'k1',
      () => Promise.resolve(1),
      () => {
        throw new Error('name taken');
      },
    ),
    /name taken/,
  );
  assert.equal(existsSync(parent), false);
});

test('a failed build keeps a parent that already existed, and what is in it', async () => {
  const parent = join(root, 'existing');
  await publishStaged(
    parent,
    'k1',
    () => Promise.resolve(1),
    () => undefined,
  );
  await assert.rejects(
    publishStaged(
      parent,
      'k2',
      () => Promise.reject(new Error('boom')),
      () => undefined,
    ),
    /boom/,
  );
  assert.deepEqual(readdirSync(parent), ['k1']);
});

test('a failed first build keeps the parent while another build is staged in it', async () => {
  const parent = join(root, 'concurrent');
  let release!: () => void;
  const second = new Promise<void>((resolve) => (release = resolve));
  let secondStarted!: () => void;
  const started = new Promise<void>((resolve) => (secondStarted = resolve));
  const first = publishStaged(
    parent,
    'k1',
    async () => {
      await started;
      throw new Error('first fails');
    },
    () => undefined,
  );
  const other = publishStaged(
    parent,
    'k2',
    async () => {
      secondStarted();
      await second;
      return 2;
    },
    () => 'recorded',
  );
  await assert.rejects(first, /first fails/);
  assert.ok(existsSync(parent), 'the other build still works in it');
  release();
  assert.equal(await other, 'recorded');
  assert.deepEqual(readdirSync(parent), ['k2']);
});
