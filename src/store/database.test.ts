import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import Database from 'better-sqlite3';

import { BangerError, type ErrorCode } from '../rpc/errors.js';
import { openReadOnly, openStore, Store } from './database.js';
import { loadMigrations } from './migrations.js';

const root = mkdtempSync(join(tmpdir(), 'banger-store-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
const dbPath = (): string => join(root, `state-${++counter}.db`);
const now = new Date().toISOString();
const builtin = loadMigrations();
const latest = Math.max(...builtin.map((m) => m.id));

function isCode(code: ErrorCode) {
  return (error: unknown): boolean => error instanceof BangerError && error.code === code;
}

function tableNames(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

const insertKernel = "INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k1', 'debian', 'ready', 'catalog', 'then', 'then')";

test('openStore creates the database, applies every built-in migration and sets the connection profile', () => {
  const path = dbPath();
  assert.equal(existsSync(path), false);
  const store = openStore(path);
  try {
    assert.equal(existsSync(path), true);
    assert.equal(store.readOnly, false);
    assert.deepEqual(
      store.appliedMigrations().map((m) => [m.id, m.name]),
      builtin.map((m) => [m.id, m.name]),
    );
    assert.equal(store.schemaVersion(), latest);
    assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
    assert.equal(store.db.pragma('foreign_keys', { simple: true }), 1);
    assert.equal(store.db.pragma('busy_timeout', { simple: true }), 5000);
    assert.equal(store.db.pragma('synchronous', { simple: true }), 1); // NORMAL
    const names = tableNames(store.db);
    for (const table of ['kernels', 'images', 'vms', 'schema_migrations']) assert.ok(names.includes(table), table);
    const indexes = (store.db.prepare("SELECT name FROM sqlite_master WHERE type = 'index'").all() as { name: string }[]).map((r) => r.name);
    assert.ok(indexes.includes('images_kernel_id') && indexes.includes('vms_image_id'), indexes.join(', '));
  } finally {
    store.close();
  }
});

test('reopening applies nothing and leaves schema_migrations unchanged', () => {
  const path = dbPath();
  const first = openStore(path);
  const before = first.appliedMigrations();
  first.close();
  const store = openStore(path);
  try {
    assert.deepEqual(store.appliedMigrations(), before, 'same rows, same applied_at');
    assert.equal(store.schemaVersion(), latest);
  } finally {
    store.close();
  }
});

test('an empty database has schema version 0', () => {
  const store = openStore(dbPath(), { migrations: [] });
  try {
    assert.equal(store.schemaVersion(), 0);
    assert.deepEqual(store.appliedMigrations(), []);
  } finally {
    store.close();
  }
});

test('openStore does not create a missing parent directory', () => {
  const dir = join(root, 'no-such-dir');
  assert.throws(
    () => openStore(join(dir, 'state.db')),
    (error: unknown) => isCode('ERR_STORE_OPEN')(error) && ((error as BangerError).hint ?? '').includes('does not exist'),
  );
  assert.equal(existsSync(dir), false);
});

test('openStore on a file that is not a database fails with ERR_STORE_OPEN and leaves it alone', () => {
  const path = dbPath();
  const junk = 'this is not sqlite, just some text that is long enough to have a header '.repeat(10);
  writeFileSync(path, junk);
  assert.throws(() => openStore(path), isCode('ERR_STORE_OPEN'));
  assert.equal(readFileSync(path, 'utf8'), junk);
});

test('the baseline schema enforces foreign keys, unique names and slots, and valid states', () => {
  const store = openStore(dbPath());
  try {
    const insertVm = store.db.prepare('INSERT INTO vms (id, name, state, image_id, slot, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    assert.throws(() => insertVm.run('v1', 'box', 'stopped', 'no-such-image', 1, now, now), /FOREIGN KEY constraint failed/);
    assert.equal((store.db.prepare('SELECT count(*) AS n FROM vms').get() as { n: number }).n, 0);
    assert.throws(
      () =>
        store.db
          .prepare("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i0', 'x', 'ready', 'catalog', 'nope', ?, ?)")
          .run(now, now),
      /FOREIGN KEY constraint failed/,
    );

    store.db.exec(insertKernel);
    store.db
      .prepare("INSERT INTO images (id, name, state, source, kernel_id, created_at, updated_at) VALUES ('i1', 'bookworm', 'ready', 'catalog', 'k1', ?, ?)")
      .run(now, now);
    insertVm.run('v1', 'box', 'stopped', 'i1', 1, now, now);
    const vm = store.db.prepare("SELECT spec, last_error FROM vms WHERE id = 'v1'").get();
    assert.deepEqual(vm, { spec: '{}', last_error: null });

    assert.throws(() => insertVm.run('v2', 'box', 'stopped', 'i1', 2, now, now), /UNIQUE constraint failed: vms.name/);
    assert.throws(() => insertVm.run('v3', 'other', 'stopped', 'i1', 1, now, now), /UNIQUE constraint failed: vms.slot/);
    assert.throws(() => insertVm.run('v4', 'other', 'exploded', 'i1', 3, now, now), /CHECK constraint failed/);
    assert.throws(
      () => store.db.prepare("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k2', 'k2', 'ready', 'ftp', ?, ?)").run(now, now),
      /CHECK constraint failed/,
    );
    assert.throws(() => store.db.prepare("UPDATE images SET state = 'running' WHERE id = 'i1'").run(), /CHECK constraint failed/);
    // ON DELETE RESTRICT: an image in use by a VM, a kernel in use by an image.
    assert.throws(() => store.db.prepare("DELETE FROM images WHERE id = 'i1'").run(), /FOREIGN KEY constraint failed/);
    assert.throws(() => store.db.prepare("DELETE FROM kernels WHERE id = 'k1'").run(), /FOREIGN KEY constraint failed/);
  } finally {
    store.close();
  }
});

test('Store.write commits on success and rolls back when the function throws', () => {
  const store = openStore(dbPath());
  try {
    const result = store.write((db) => {
      db.exec(insertKernel);
      return 'done';
    });
    assert.equal(result, 'done');
    assert.throws(
      () =>
        store.write((db) => {
          db.exec("UPDATE kernels SET name = 'renamed'");
          throw new Error('boom');
        }),
      /boom/,
    );
    assert.deepEqual(store.db.prepare('SELECT name FROM kernels').all(), [{ name: 'debian' }]);
  } finally {
    store.close();
  }
});

test('openReadOnly on a missing file fails with ERR_STORE_MISSING and creates nothing', () => {
  const path = dbPath();
  assert.throws(() => openReadOnly(path), isCode('ERR_STORE_MISSING'));
  assert.equal(existsSync(path), false);
  assert.equal(existsSync(`${path}-wal`), false);
  assert.throws(() => openReadOnly(join(root, 'no-such-dir', 'state.db')), isCode('ERR_STORE_MISSING'));
  assert.equal(existsSync(join(root, 'no-such-dir')), false);
});

test('openReadOnly applies no migrations to an older database and rejects writes', () => {
  const path = dbPath();
  openStore(path).close();
  // Make it look older: forget the last migration (its tables stay) and put a row in its table.
  const raw = new Database(path);
  raw.prepare('DELETE FROM schema_migrations WHERE id = ?').run(latest);
  raw.exec(insertKernel);
  const rowsBefore = raw.prepare('SELECT * FROM schema_migrations ORDER BY id').all();
  const kernelsBefore = raw.prepare('SELECT * FROM kernels').all();
  const schemaBefore = raw.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all();
  raw.close();

  const store = openReadOnly(path);
  try {
    assert.equal(store.readOnly, true);
    assert.equal(store.schemaVersion(), Math.max(0, ...builtin.filter((m) => m.id !== latest).map((m) => m.id)));
    assert.ok(!store.appliedMigrations().some((m) => m.id === latest), 'the missing migration was not applied');
    assert.equal(store.db.pragma('foreign_keys', { simple: true }), 1);
    assert.equal(store.db.pragma('busy_timeout', { simple: true }), 5000);

    // A raw write through the connection is rejected by SQLite...
    assert.throws(
      () => store.db.prepare("INSERT INTO kernels (id, name, state, source, created_at, updated_at) VALUES ('k9', 'k9', 'ready', 'import', 'x', 'x')").run(),
      (error: unknown) => error instanceof Database.SqliteError && error.code === 'SQLITE_READONLY',
    );
    assert.throws(() => store.db.exec('DELETE FROM kernels'), /readonly/i);
    // ...and the store's write funnel refuses up front.
    let ran = false;
    const markRan = (): void => {
      ran = true;
    };
    assert.throws(() => {
      store.write(markRan);
    }, isCode('ERR_STORE_READ_ONLY'));
    assert.equal(ran, false);
  } finally {
    store.close();
  }

  const check = new Database(path, { readonly: true });
  assert.deepEqual(check.prepare('SELECT * FROM schema_migrations ORDER BY id').all(), rowsBefore);
  assert.deepEqual(check.prepare('SELECT * FROM kernels').all(), kernelsBefore);
  assert.deepEqual(check.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY name').all(), schemaBefore);
  check.close();
});

test('openReadOnly on a database with no schema yet creates nothing', () => {
  const path = dbPath();
  openStore(path, { migrations: [] }).close(); // only schema_migrations, nothing recorded
  const store = openReadOnly(path);
  try {
    assert.equal(store.schemaVersion(), 0);
  } finally {
    store.close();
  }
  const check = new Database(path, { readonly: true });
  assert.deepEqual(tableNames(check), ['schema_migrations'], 'the built-in migrations were not applied');
  check.close();
});

test('a write SQLite rejects as read-only is reported as ERR_STORE_READ_ONLY', () => {
  const path = dbPath();
  openStore(path).close();
  // A store that believes it is writable over a connection that is not (e.g. a read-only file).
  const store = new Store(new Database(path, { readonly: true }), false);
  try {
    assert.throws(
      () => store.write((db) => db.exec(insertKernel)),
      (error: unknown) => {
        assert.ok(isCode('ERR_STORE_READ_ONLY')(error), String(error));
        assert.ok((error as Error).cause instanceof Database.SqliteError);
        return true;
      },
    );
  } finally {
    store.close();
  }
});

test('openReadOnly on a file that is not a database fails with ERR_STORE_OPEN', () => {
  const path = dbPath();
  writeFileSync(path, 'this is not sqlite, just some text that is long enough to have a header '.repeat(10));
  assert.throws(
    () => openReadOnly(path),
    (error: unknown) => isCode('ERR_STORE_OPEN')(error) && typeof (error as BangerError).hint === 'string',
  );
});
