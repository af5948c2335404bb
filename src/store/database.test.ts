import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import Database from 'better-sqlite3';

import { BangerError } from '../rpc/errors.js';
import { openReadOnly, openStore } from './database.js';
import { loadMigrations } from './migrations.js';

const root = mkdtempSync(join(tmpdir(), 'banger-store-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
const dbPath = (): string => join(root, `state-${++counter}.db`);
const now = new Date().toISOString();

test('openStore creates and migrates the database with the connection profile', () => {
  const store = openStore(dbPath());
  try {
    const latest = Math.max(...loadMigrations().map((m) => m.id));
    assert.equal(store.schemaVersion(), latest);
    assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(store.db.pragma('foreign_keys', { simple: true }), 1);
    assert.equal(store.db.pragma('busy_timeout', { simple: true }), 5000);
    assert.equal(store.db.pragma('synchronous', { simple: true }), 1); // NORMAL
    const names = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
    for (const table of ['kernels', 'images', 'vms', 'schema_migrations']) assert.ok(names.includes(table), table);
  } finally {
    store.close();
  }
});

test('reopening applies nothing new', () => {
  const path = dbPath();
  openStore(path).close();
  const store = openStore(path);
  try {
    const applied = store.appliedMigrations();
    assert.equal(applied.length, loadMigrations().length);
    assert.equal(new Set(applied.map((m) => m.appliedAt)).size <= applied.length, true);
  } finally {
    store.close();
  }
});

test('the baseline schema enforces foreign keys, unique names and valid states', () => {
  const store = openStore(dbPath());
  try {
    const insertVm = store.db.prepare('INSERT INTO vms (id, name, state, image_id, slot, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    assert.throws(() => insertVm.run('v1', 'box', 'stopped', 'no-such-image', 1, now, now), /FOREIGN KEY constraint failed/);
    store.db.prepare("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k1', 'debian', 'ready', 'catalog', ?, ?)").run(now, now);
    store.db.prepare("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i1', 'bookworm', 'ready', 'catalog', 'k1', ?, ?)").run(now, now);
    insertVm.run('v1', 'box', 'stopped', 'i1', 1, now, now);
    assert.throws(() => insertVm.run('v2', 'box', 'stopped', 'i1', 2, now, now), /UNIQUE constraint failed: vms.name/);
    assert.throws(() => insertVm.run('v3', 'other', 'stopped', 'i1', 1, now, now), /UNIQUE constraint failed: vms.slot/);
    assert.throws(() => insertVm.run('v4', 'other', 'exploded', 'i1', 3, now, now), /CHECK constraint failed/);
    assert.throws(() => store.db.prepare("DELETE FROM images WHERE id = 'i1'").run(), /FOREIGN KEY constraint failed/);
  } finally {
    store.close();
  }
});

test('openReadOnly on a missing file fails up front and creates nothing', () => {
  const path = dbPath();
  assert.throws(() => openReadOnly(path), (error: unknown) => error instanceof BangerError && error.code === 'ERR_STORE_MISSING');
  assert.equal(existsSync(path), false);
});

test('openReadOnly applies no migrations and rejects writes', () => {
  const path = dbPath();
  openStore(path).close();
  // Make it look like an older database: forget the last migration and drop what it made.
  const latest = Math.max(...loadMigrations().map((m) => m.id));
  const raw = new Database(path);
  raw.prepare('DELETE FROM schema_migrations WHERE id = ?').run(latest);
  raw.close();

  const store = openReadOnly(path);
  try {
    assert.equal(store.readOnly, true);
    assert.equal(store.schemaVersion(), latest - 1, 'the missing migration was not applied behind our back');
    assert.throws(
      () => store.db.prepare("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k', 'k', 'ready', 'import', 'x', 'x')").run(),
      /readonly/i,
    );
  } finally {
    store.close();
  }
  const check = new Database(path, { readonly: true });
  assert.equal((check.prepare('SELECT count(*) AS n FROM kernels').get() as { n: number }).n, 0);
  assert.equal((check.prepare('SELECT count(*) AS n FROM schema_migrations WHERE id = ?').get(latest) as { n: number }).n, 0);
  check.close();
});

test('openReadOnly on a file that is not a database fails with ERR_STORE_OPEN', () => {
  const path = dbPath();
  writeFileSync(path, 'this is not sqlite, just some text that is long enough to have a header '.repeat(10));
  assert.throws(() => openReadOnly(path), (error: unknown) => error instanceof BangerError && error.code === 'ERR_STORE_OPEN');
});
