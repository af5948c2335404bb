import assert from 'node:assert/strict';
import { test } from 'node:test';

import { openStore } from './database.js';
import { VmsRepo, type VmRecord } from './vms-repo.js';

const spec = { vcpu: 1, memoryMiB: 1024, diskSizeBytes: 8 * 1024 ** 3, init: 'minimal' as const, nat: false, network: 'isolated' as const };

test('every write to the vms table is announced after it is written, as the row now reads', () => {
  const store = openStore(':memory:');
  store.db.exec("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k', 'k', 'ready', 'catalog', 'x', 'x')");
  store.db.exec("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i', 'i', 'ready', 'catalog', 'k', 'x', 'x')");
  const seen: string[] = [];
  const repo: VmsRepo = new VmsRepo(store, {
    // Read back inside the callback: the write is already there.
    changed: (id) => {
      const vm: VmRecord | undefined = repo.get(id);
      seen.push(`changed ${vm?.state ?? 'gone'} vcpu=${vm?.spec.vcpu ?? '?'} ws=${vm?.workspace === null ? 'none' : 'some'}`);
    },
    deleted: (vm) => seen.push(`deleted ${vm.name} (${repo.get(vm.id) === undefined ? 'gone' : 'still there'})`),
  });
  repo.reserve({ id: 'v1', name: 'box', imageId: 'i', spec }, 10);
  repo.setState('v1', 'created');
  repo.setSpec('v1', { ...spec, vcpu: 2 });
  repo.setWorkspace('v1', {
    guestPath: '/root/repo',
    sourcePath: '/src',
    baseCommit: 'a'.repeat(40),
    sourceHead: 'a'.repeat(40),
    mode: 'shallow',
    branch: null,
    includeUntracked: false,
    preparedAt: 'x',
  });
  repo.delete('v1');
  repo.delete('v1'); // nothing left to delete: no second announcement
  assert.deepEqual(seen, [
    'changed creating vcpu=1 ws=none',
    'changed created vcpu=1 ws=none',
    'changed created vcpu=2 ws=none',
    'changed created vcpu=2 ws=some',
    'deleted box (gone)',
  ]);
});

test('a refused write (a duplicate name) announces nothing', () => {
  const store = openStore(':memory:');
  store.db.exec("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k', 'k', 'ready', 'catalog', 'x', 'x')");
  store.db.exec("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i', 'i', 'ready', 'catalog', 'k', 'x', 'x')");
  const seen: string[] = [];
  const repo = new VmsRepo(store, { changed: (id) => seen.push(id), deleted: (vm) => seen.push(vm.id) });
  repo.reserve({ id: 'v1', name: 'box', imageId: 'i', spec }, 10);
  assert.throws(() => repo.reserve({ id: 'v2', name: 'box', imageId: 'i', spec }, 10), { code: 'ERR_ALREADY_EXISTS' });
  assert.deepEqual(seen, ['v1']);
});
