import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import type { WorkspaceInfo } from '../rpc/methods.js';
import { openStore } from './database.js';
import { loadMigrations } from './migrations.js';
import { VmsRepo } from './vms-repo.js';

const root = mkdtempSync(join(tmpdir(), 'banger-vms-repo-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const spec = { vcpu: 1, memoryMiB: 1024, diskSizeBytes: 8 * 1024 ** 3, init: 'minimal' as const, nat: false, network: 'isolated' as const };
const workspace: WorkspaceInfo = {
  guestPath: '/root/repo',
  sourcePath: '/home/dev/app',
  baseCommit: 'a'.repeat(40),
  sourceHead: 'a'.repeat(40),
  mode: 'shallow',
  branch: null,
  includeUntracked: false,
  preparedAt: '2026-11-25T12:00:00.000Z',
};

test('a VM from before workspaces gets none; a workspace is recorded, read back, and forgotten', () => {
  const path = join(root, 'state.db');
  // A store written by a banger that knew only the baseline schema, holding a VM.
  const old = openStore(path, { migrations: loadMigrations().filter((m) => m.id === 1) });
  old.db.exec("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k', 'k', 'ready', 'catalog', 'x', 'x')");
  old.db.exec("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i', 'i', 'ready', 'catalog', 'k', 'x', 'x')");
  old.db
    .prepare(
      "INSERT INTO vms (id, name, state, image_id, slot, spec, created_at, updated_at) VALUES ('old', 'old', 'created', 'i', 1, ?, '2020-01-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z')",
    )
    .run(JSON.stringify(spec));
  old.close();

  const store = openStore(path);
  try {
    const vms = new VmsRepo(store);
    assert.equal(vms.get('old')?.workspace, null, 'migration 2 leaves existing VMs without a workspace');
    assert.equal(vms.reserve({ id: 'new', name: 'new', imageId: 'i', spec }, 10).workspace, null);
    vms.setWorkspace('new', workspace);
    assert.deepEqual(vms.get('new')?.workspace, workspace);
    assert.deepEqual(
      vms.list().map((vm) => [vm.name, vm.workspace?.guestPath ?? null]),
      [
        ['old', null],
        ['new', '/root/repo'],
      ],
    );
    vms.setWorkspace('new', null);
    assert.equal(vms.get('new')?.workspace, null);
  } finally {
    store.close();
  }
});

test('a VM is "creating" from its reservation; the rebuilt table keeps older rows and refuses unknown states', () => {
  const store = openStore(join(root, 'creating.db'));
  try {
    store.db.exec("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k', 'k', 'ready', 'catalog', 'x', 'x')");
    store.db.exec("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i', 'i', 'ready', 'catalog', 'k', 'x', 'x')");
    const vms = new VmsRepo(store);
    assert.equal(vms.reserve({ id: 'new', name: 'new', imageId: 'i', spec }, 10).state, 'creating');
    assert.equal(vms.get('new')?.state, 'creating');
    vms.setState('new', 'created');
    assert.equal(vms.get('new')?.state, 'created');
    assert.throws(() => store.db.exec("UPDATE vms SET state = 'bogus'"), /CHECK constraint failed/);
  } finally {
    store.close();
  }
});
