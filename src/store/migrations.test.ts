import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import Database from 'better-sqlite3';

import { BangerError, type ErrorCode } from '../rpc/errors.js';
import { openStore } from './database.js';
import { builtinMigrationsDir, loadMigrations, runMigrations, type Migration } from './migrations.js';

const root = mkdtempSync(join(tmpdir(), 'banger-migrations-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
const dbPath = (): string => join(root, `db-${++counter}.db`);

function tables(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

function recorded(db: Database.Database): { id: number; name: string; applied_at: string }[] {
  return db.prepare('SELECT id, name, applied_at FROM schema_migrations ORDER BY id').all() as { id: number; name: string; applied_at: string }[];
}

const recordedIds = (db: Database.Database): number[] => recorded(db).map((r) => r.id);

function isCode(code: ErrorCode) {
  return (error: unknown): boolean => error instanceof BangerError && error.code === code;
}

function migrationDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(root, 'dir-'));
  for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  return dir;
}

/** Contents and mtimes of the database file and any -wal/-shm side files. */
function snapshot(dir: string, path: string): Record<string, { bytes: string; mtimeMs: number }> {
  const base = path.slice(dir.length + 1);
  const out: Record<string, { bytes: string; mtimeMs: number }> = {};
  for (const name of readdirSync(dir)
    .filter((n) => n.startsWith(base))
    .sort()) {
    const full = join(dir, name);
    out[name] = { bytes: readFileSync(full).toString('hex'), mtimeMs: statSync(full).mtimeMs };
  }
  return out;
}

// Plain CREATE TABLE (no IF NOT EXISTS): re-running any of these fails, which proves skipping.
const one: Migration = { id: 1, name: 'one', sql: 'CREATE TABLE one (x INTEGER);' };
const two: Migration = { id: 2, name: 'two', sql: 'CREATE TABLE two (y INTEGER);' };
const three: Migration = { id: 3, name: 'three', sql: 'CREATE TABLE three (z INTEGER);' };

test('the built-in migrations load in ascending id order, starting with the baseline', () => {
  const migrations = loadMigrations();
  const files = readdirSync(builtinMigrationsDir()).filter((f) => f.endsWith('.sql'));
  assert.equal(migrations.length, files.length);
  const ids = migrations.map((m) => m.id);
  assert.deepEqual(
    ids,
    [...new Set(ids)].sort((a, b) => a - b),
  );
  assert.deepEqual(migrations[0] && { id: migrations[0].id, name: migrations[0].name }, { id: 1, name: 'baseline' });
  assert.match(migrations[0]?.sql ?? '', /CREATE TABLE vms/);
});

test('loadMigrations parses ids and names and sorts by numeric id, ignoring non-.sql files', () => {
  const dir = migrationDir({
    '0010-add-things.sql': 'SELECT 10;',
    '0002-second.sql': 'SELECT 2;',
    '00001-first.sql': 'SELECT 1;',
    'README.md': 'not a migration',
  });
  assert.deepEqual(loadMigrations(dir), [
    { id: 1, name: 'first', sql: 'SELECT 1;' },
    { id: 2, name: 'second', sql: 'SELECT 2;' },
    { id: 10, name: 'add-things', sql: 'SELECT 10;' },
  ]);
});

test('a fresh database gets every migration, each recorded once with its name', () => {
  const db = new Database(dbPath());
  const result = runMigrations(db, [one, two]);
  assert.deepEqual(result.applied, [1, 2]);
  assert.deepEqual(
    recorded(db).map((r) => [r.id, r.name]),
    [
      [1, 'one'],
      [2, 'two'],
    ],
  );
  assert.ok(!Number.isNaN(Date.parse(recorded(db)[0]?.applied_at ?? '')), 'applied_at is a timestamp');
  assert.deepEqual(tables(db), ['one', 'schema_migrations', 'two']);
  db.close();
});

test('already-applied ids are skipped, not re-executed', () => {
  const path = dbPath();
  openStore(path, { migrations: [one] }).close();
  const raw = new Database(path);
  const before = recorded(raw);
  // `one` would fail if re-run (plain CREATE TABLE); only `two` is new.
  assert.deepEqual(runMigrations(raw, [one, two]).applied, [2]);
  assert.deepEqual(runMigrations(raw, [one, two]).applied, []);
  assert.deepEqual(recordedIds(raw), [1, 2]);
  assert.deepEqual(recorded(raw)[0], before[0], 'the row for migration 1 is untouched');
  raw.close();
});

test('a known id missing below recorded ones is still applied (ids may have gaps)', () => {
  const db = new Database(dbPath());
  assert.deepEqual(runMigrations(db, [one, three]).applied, [1, 3]);
  assert.deepEqual(runMigrations(db, [one, two, three]).applied, [2]);
  assert.deepEqual(recordedIds(db), [1, 2, 3]);
  assert.ok(tables(db).includes('two'));
  db.close();
});

test('a failing migration rolls back completely; earlier ones stay; a fixed list applies on reopen', () => {
  const path = dbPath();
  const broken: Migration = {
    id: 2,
    name: 'broken',
    sql: 'CREATE TABLE transient (z INTEGER); INSERT INTO transient VALUES (1); INSERT INTO no_such_table VALUES (1);',
  };
  assert.throws(
    () => openStore(path, { migrations: [one, broken] }),
    (error: unknown) => {
      assert.ok(isCode('ERR_MIGRATION_FAILED')(error), String(error));
      assert.match((error as Error).message, /migration 2 \(broken\) failed: no such table: no_such_table/);
      assert.ok((error as Error).cause instanceof Error, 'the SQLite error is kept as the cause');
      return true;
    },
  );
  const check = new Database(path);
  assert.ok(!tables(check).includes('transient'), 'nothing the failed migration created survives');
  assert.ok(tables(check).includes('one'), 'the earlier migration stays applied');
  assert.deepEqual(recordedIds(check), [1], 'no row for the failed migration');
  check.close();

  const fixed: Migration = { id: 2, name: 'fixed', sql: 'CREATE TABLE transient (z INTEGER); INSERT INTO transient VALUES (1);' };
  const store = openStore(path, { migrations: [one, fixed] });
  try {
    assert.deepEqual(
      store.appliedMigrations().map((m) => [m.id, m.name]),
      [
        [1, 'one'],
        [2, 'fixed'],
      ],
    );
    assert.deepEqual(store.db.prepare('SELECT z FROM transient').all(), [{ z: 1 }]);
  } finally {
    store.close();
  }
});

test('duplicate ids passed to runMigrations are rejected before anything is applied', () => {
  const db = new Database(dbPath());
  assert.throws(() => runMigrations(db, [one, { ...two, id: 1 }]), isCode('ERR_MIGRATION_DUPLICATE'));
  assert.deepEqual(tables(db), [], 'not even schema_migrations was created');
  db.close();
});

test('duplicate ids among migration files are rejected', () => {
  const dir = migrationDir({ '0001-first.sql': 'CREATE TABLE a (x);', '0001-second.sql': 'CREATE TABLE b (x);' });
  assert.throws(
    () => loadMigrations(dir),
    (error: unknown) => isCode('ERR_MIGRATION_DUPLICATE')(error) && (error as Error).message.includes('share id 1'),
  );
  // Same id written with different zero padding is still the same id.
  assert.throws(() => loadMigrations(migrationDir({ '0001-a.sql': '', '00001-b.sql': '' })), isCode('ERR_MIGRATION_DUPLICATE'));
});

test('out-of-order and invalid ids passed to runMigrations are rejected before anything is applied', () => {
  const db = new Database(dbPath());
  assert.throws(
    () => runMigrations(db, [two, one]),
    (error: unknown) => isCode('ERR_MIGRATION_FAILED')(error) && (error as Error).message.includes('out of order'),
  );
  assert.throws(() => runMigrations(db, [{ ...one, id: 0 }]), isCode('ERR_MIGRATION_FAILED'));
  assert.throws(() => runMigrations(db, [{ ...one, id: 1.5 }]), isCode('ERR_MIGRATION_FAILED'));
  assert.deepEqual(tables(db), []);
  db.close();
});

test('malformed migration file names are rejected with a clear error', () => {
  for (const bad of ['1-too-short.sql', '0001_underscore.sql', '0001-Upper-Case.sql', '0001-.sql', 'baseline.sql', '0001-trailing-.sql']) {
    const dir = migrationDir({ [bad]: 'SELECT 1;' });
    assert.throws(
      () => loadMigrations(dir),
      (error: unknown) => {
        assert.ok(isCode('ERR_MIGRATION_FAILED')(error), bad);
        assert.ok((error as Error).message.includes(`malformed migration file name "${bad}"`), (error as Error).message);
        assert.match((error as BangerError).hint ?? '', /NNNN-kebab-case-name\.sql/);
        return true;
      },
    );
  }
});

test('a missing migrations directory is a clear error', () => {
  assert.throws(
    () => loadMigrations(join(root, 'no-such-dir')),
    (error: unknown) => isCode('ERR_MIGRATION_FAILED')(error) && (error as Error).message.includes('no migrations directory'),
  );
});

for (const journal of ['delete', 'wal'] as const) {
  test(`a database newer than the code is refused and left byte-identical (journal_mode=${journal})`, () => {
    // As a newer banger would have left it (WAL), and in rollback mode, where
    // switching to WAL before refusing would rewrite the file header.
    const path = dbPath();
    const setup = new Database(path);
    setup.pragma(`journal_mode = ${journal}`);
    runMigrations(setup, [one]);
    setup.prepare("INSERT INTO schema_migrations (id, name, applied_at) VALUES (9999, 'future', '2099-01-01T00:00:00.000Z')").run();
    const rowsBefore = recorded(setup);
    setup.close();
    const filesBefore = snapshot(root, path);

    assert.throws(
      () => openStore(path, { migrations: [one, two] }),
      (error: unknown) => {
        assert.ok(isCode('ERR_STORE_TOO_NEW')(error), String(error));
        assert.match((error as Error).message, /schema version 9999, newer than this banger knows \(2\)/);
        assert.match((error as BangerError).hint ?? '', /state\.db was written by a newer banger.*upgrade banger/);
        return true;
      },
    );
    assert.deepEqual(snapshot(root, path), filesBefore, 'database file (and side files) unchanged');

    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('journal_mode', { simple: true }), journal);
    assert.deepEqual(recorded(check), rowsBefore);
    assert.ok(!tables(check).includes('two'), 'migration 2 was not applied');
    check.close();

    // runMigrations on its own refuses the same way, before creating or applying anything.
    const direct = new Database(path);
    assert.throws(() => runMigrations(direct, [one, two]), isCode('ERR_STORE_TOO_NEW'));
    assert.ok(!tables(direct).includes('two'));
    direct.close();
  });
}

test('an empty migrations directory yields no migrations', () => {
  mkdirSync(join(root, 'empty'));
  assert.deepEqual(loadMigrations(join(root, 'empty')), []);
});
