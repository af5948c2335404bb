import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Database } from 'better-sqlite3';

import { distPath } from '../dist-root.js';
import { BangerError, hasErrnoCode } from '../rpc/errors.js';

/**
 * Schema migrations: numbered SQL files in ./migrations, applied in order,
 * each exactly once, each in its own transaction together with its
 * schema_migrations row.
 *
 * Migrations are append-only. Never edit, renumber or delete one that has
 * shipped: databases in the field have recorded it as applied and would never
 * see the change. Fix forward with a new migration.
 */
export interface Migration {
  id: number;
  name: string;
  sql: string;
}

const FILE_PATTERN = /^(\d{4,})-([a-z0-9]+(?:-[a-z0-9]+)*)\.sql$/;

/** The migrations shipped with this build (copied next to the compiled module by the build). */
export function builtinMigrationsDir(): string {
  return distPath('src', 'store', 'migrations');
}

/**
 * Reads the `*.sql` files in `dir`, which must all be named
 * `NNNN-kebab-name.sql` (id of 4 or more digits), sorted by id. Other files are
 * ignored. Two files with the same id are ERR_MIGRATION_DUPLICATE.
 */
export function loadMigrations(dir: URL | string = builtinMigrationsDir()): Migration[] {
  const path = typeof dir === 'string' ? dir : fileURLToPath(dir);
  let files: string[];
  try {
    files = readdirSync(path).sort();
  } catch (error) {
    if (!hasErrnoCode(error, 'ENOENT')) throw error;
    throw new BangerError('ERR_MIGRATION_FAILED', `no migrations directory at ${path}`, {
      cause: error,
      hint: 'this banger installation is incomplete (the build copies src/**/*.sql into dist/); reinstall banger',
    });
  }
  const migrations: Migration[] = [];
  for (const file of files) {
    if (!file.endsWith('.sql')) continue;
    const match = FILE_PATTERN.exec(file);
    if (match === null) {
      throw new BangerError('ERR_MIGRATION_FAILED', `malformed migration file name "${file}" in ${path}`, {
        hint: 'migration files are named NNNN-kebab-case-name.sql: a 4+ digit id, then lowercase words joined by dashes',
      });
    }
    const [, id = '', name = ''] = match;
    migrations.push({ id: Number(id), name, sql: readFileSync(join(path, file), 'utf8') });
  }
  migrations.sort((a, b) => a.id - b.id);
  validateMigrations(migrations);
  return migrations;
}

/** Ids must be unique positive integers; the list must be in strictly ascending order. */
export function validateMigrations(migrations: readonly Migration[]): void {
  const seen = new Set<number>();
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isSafeInteger(m.id) || m.id < 1) {
      throw new BangerError('ERR_MIGRATION_FAILED', `migration "${m.name}" has invalid id ${m.id}`);
    }
    if (seen.has(m.id)) {
      throw new BangerError('ERR_MIGRATION_DUPLICATE', `two migrations share id ${m.id} ("${m.name}")`, {
        hint: 'give the newer migration the next unused number',
      });
    }
    if (m.id < previous) {
      throw new BangerError('ERR_MIGRATION_FAILED', `migration ${m.id} ("${m.name}") is out of order after ${previous}`, {
        hint: 'list migrations in ascending id order',
      });
    }
    seen.add(m.id);
    previous = m.id;
  }
}

export interface AppliedMigration {
  id: number;
  name: string;
  appliedAt: string;
}

export function appliedMigrations(db: Database): AppliedMigration[] {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (exists === undefined) return [];
  return db.prepare('SELECT id, name, applied_at AS appliedAt FROM schema_migrations ORDER BY id').all() as AppliedMigration[];
}

/**
 * Throws ERR_STORE_TOO_NEW, touching nothing, when the database records a
 * migration id higher than any known one (it was written by a newer banger).
 * Returns the recorded migrations.
 */
export function refuseNewerDatabase(db: Database, migrations: readonly Migration[]): AppliedMigration[] {
  validateMigrations(migrations);
  const newestKnown = migrations.at(-1)?.id ?? 0;
  const recorded = appliedMigrations(db);
  const newestRecorded = recorded.at(-1)?.id ?? 0;
  if (newestRecorded > newestKnown) {
    throw new BangerError('ERR_STORE_TOO_NEW', `the database is at schema version ${newestRecorded}, newer than this banger knows (${newestKnown})`, {
      hint: 'this state.db was written by a newer banger; upgrade banger to use it (the database was left unchanged)',
    });
  }
  return recorded;
}

/**
 * Applies, in id order, every known migration the database has not recorded,
 * each in its own transaction together with its schema_migrations row: on
 * failure that migration leaves nothing behind (earlier ones stay applied)
 * and ERR_MIGRATION_FAILED names it.
 *
 * What runs is decided per id, not by a high-water mark: ids may have gaps,
 * and a known id missing from the database is applied even when higher ids
 * are recorded. Skipping it would silently leave the schema without something
 * the code relies on; applying it at worst fails loudly (and rolls back).
 *
 * A database that records an id higher than any known one was written by a
 * newer banger: it is refused with ERR_STORE_TOO_NEW before anything is
 * written (not even schema_migrations is created).
 */
export function runMigrations(db: Database, migrations: readonly Migration[]): { applied: number[] } {
  const recorded = refuseNewerDatabase(db, migrations);
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  TEXT NOT NULL
  )`);
  const done = new Set(recorded.map((m) => m.id));
  const record = db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)');
  const applied: number[] = [];
  for (const migration of migrations) {
    if (done.has(migration.id)) continue;
    const apply = db.transaction(() => {
      db.exec(migration.sql);
      record.run(migration.id, migration.name, new Date().toISOString());
    });
    try {
      apply();
    } catch (error) {
      throw new BangerError(
        'ERR_MIGRATION_FAILED',
        `migration ${migration.id} (${migration.name}) failed: ${error instanceof Error ? error.message : String(error)}`,
        {
          cause: error,
          hint: 'nothing of this migration was applied; see `banger daemon logs` and report it',
        },
      );
    }
    applied.push(migration.id);
  }
  return { applied };
}
