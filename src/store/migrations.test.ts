import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import Database from 'better-sqlite3';

import { BangerError, type ErrorCode } from '../rpc/errors.js';
import { openStore } from './database.js';
import { loadMigrations, runMigrations, type Migration } from './migrations.js';

const root = mkdtempSync(join(tmpdir(), 'banger-migrations-'));
after(() => {
  rmSync(root, { recursive: true, force: true });
});
let counter = 0;
const dbPath = (): string => join(root, `db-${++counter}.db`);

function tables(db: Database.Database): string[] {
  return (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
}

function recorded(db: Database.Database): number[] {
  return (db.prepare('SELECT id FROM schema_migrations ORDER BY id').all() as { id: number }[]).map((r) => r.id);
}

function isCode(code: ErrorCode) {
  return (error: unknown): boolean => error instanceof BangerError && error.code === code;
}

const one: Migration = { id: 1, name: 'one', sql: 'CREATE TABLE one (x INTEGER);' };
const two: Migration = { id: 2, name: 'two', sql: 'CREATE TABLE two (y INTEGER);' };

test('the built-in migrations load in order with unique ids', () => {
  const migrations = loadMigrations();
  assert.ok(migrations.length >= 1);
  assert.deepEqual(
    migrations.map((m) => m.id),
    [...migrations.map((m) => m.id)].sort((a, b) => a - b),
  );
  assert.equal(migrations[0]?.name, 'baseline');
});

test('a fresh database gets every migration, recorded', () => {
  const db = new Database(dbPath());
  const result = runMigrations(db, [one, two]);
  assert.deepEqual(result.applied, [1, 2]);
  assert.deepEqual(recorded(db), [1, 2]);
  assert.ok(tables(db).includes('one') && tables(db).includes('two'));
  db.close();
});

test('re-running is a no-op: applied ids are skipped, not re-executed', () => {
  const db = new Database(dbPath());
  runMigrations(db, [one]);
  // `two` is new; `one` would fail if re-run (CREATE TABLE without IF NOT EXISTS).
  assert.deepEqual(runMigrations(db, [one, two]).applied, [2]);
  assert.deepEqual(runMigrations(db, [one, two]).applied, []);
  assert.deepEqual(recorded(db), [1, 2]);
  db.close();
});

test('a failing migration rolls back completely and leaves earlier ones applied', () => {
  const path = dbPath();
  const db = new Database(path);
  const broken: Migration = {
    id: 2,
    name: 'broken',
    sql: 'CREATE TABLE transient (z INTEGER); INSERT INTO transient VALUES (1); INSERT INTO no_such_table VALUES (1);',
  };
  assert.throws(() => runMigrations(db, [one, broken]), (error: unknown) => {
    assert.ok(isCode('ERR_MIGRATION_FAILED')(error));
    assert.match((error as Error).message, /migration 2 \(broken\) failed: no such table: no_such_table/);
    return true;
  });
  assert.ok(!tables(db).includes('transient'), 'nothing the failed migration created survives');
  assert.deepEqual(recorded(db), [1], 'no row for the failed migration');
  // Retrying with a fixed migration applies it from the same point.
  const fixed: Migration = { id: 2, name: 'fixed', sql: 'CREATE TABLE transient (z INTEGER);' };
  assert.deepEqual(runMigrations(db, [one, fixed]).applied, [2]);
  assert.ok(tables(db).includes('transient'));
  db.close();
});

test('duplicate ids are rejected before anything is applied', () => {
  const db = new Database(dbPath());
  assert.throws(() => runMigrations(db, [one, { ...two, id: 1 }]), isCode('ERR_MIGRATION_DUPLICATE'));
  assert.ok(!tables(db).includes('one'));
  db.close();

  const dir = join(root, 'dup-files');
  mkdirSync(dir);
  writeFileSync(join(dir, '0001-first.sql'), 'SELECT 1;');
  writeFileSync(join(dir, '0001-second.sql'), 'SELECT 1;');
  assert.throws(() => loadMigrations(dir), isCode('ERR_MIGRATION_DUPLICATE'));
});

test('malformed migration file names are rejected', () => {
  const dir = join(root, 'bad-names');
  mkdirSync(dir);
  writeFileSync(join(dir, '1-too-short.sql'), 'SELECT 1;');
  assert.throws(() => loadMigrations(dir), /malformed migration file name "1-too-short.sql"/);
});

test('a database newer than the code is refused and left byte-identical', () => {
  const path = dbPath();
  const setup = new Database(path);
  runMigrations(setup, [one]);
  setup.prepare("INSERT INTO schema_migrations (id, name, applied_at) VALUES (9999, 'future', 'x')").run();
  setup.close();
  const hash = (): string => createHash('sha256').update(readFileSync(path)).digest('hex');
  const before = hash();
  assert.throws(() => openStore(path, { migrations: [one, two] }), (error: unknown) => {
    assert.ok(isCode('ERR_STORE_TOO_NEW')(error));
    assert.match((error as Error).message, /schema version 9999, newer than this banger knows \(2\)/);
    assert.match((error as BangerError).hint ?? '', /upgrade banger/);
    return true;
  });
  assert.equal(hash(), before);
  const check = new Database(path);
  assert.ok(!tables(check).includes('two'), 'migration 2 was not applied');
  check.close();
});
