import { existsSync } from 'node:fs';
import { dirname } from 'node:path';

import Database from 'better-sqlite3';

import { BangerError } from '../rpc/errors.js';
import { appliedMigrations, loadMigrations, refuseNewerDatabase, runMigrations, type AppliedMigration, type Migration } from './migrations.js';

const BUSY_TIMEOUT_MS = 5000;

/**
 * banger's SQLite store. `openStore` is for the daemon (creates the file and
 * migrates it); `openReadOnly` is for diagnostics that must change nothing.
 * Repositories (vms, images, kernels) build on `db` and make their changes
 * through `write`.
 */
export class Store {
  readonly db: Database.Database;
  readonly readOnly: boolean;

  constructor(db: Database.Database, readOnly: boolean) {
    this.db = db;
    this.readOnly = readOnly;
  }

  appliedMigrations(): AppliedMigration[] {
    return appliedMigrations(this.db);
  }

  /** Highest applied migration id; 0 for an empty database. */
  schemaVersion(): number {
    return this.appliedMigrations().at(-1)?.id ?? 0;
  }

  /**
   * Runs `fn` in a transaction (nested calls become savepoints) and returns
   * its result. A read-only store refuses with ERR_STORE_READ_ONLY before
   * running anything; a write SQLite rejects as read-only is reported the
   * same way. Everything else thrown by `fn` passes through unchanged after
   * the rollback.
   */
  write<T>(fn: (db: Database.Database) => T): T {
    if (this.readOnly) {
      throw new BangerError('ERR_STORE_READ_ONLY', 'the store was opened read-only; refusing to write', {
        hint: 'diagnostics open the store read-only; changes go through the daemon',
      });
    }
    try {
      return this.db.transaction(() => fn(this.db))();
    } catch (error) {
      if (isSqliteReadOnly(error)) {
        throw new BangerError('ERR_STORE_READ_ONLY', `cannot write the store at ${this.db.name}: ${error.message}`, {
          cause: error,
          hint: `check that ${this.db.name} and its directory are writable by you`,
        });
      }
      throw error;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * Opens (creating if needed) and migrates the store. The parent directory
 * must already exist; it is not created here. Every connection gets the same
 * profile: WAL, busy timeout, foreign keys, synchronous=NORMAL (safe with
 * WAL). `migrations` defaults to the built-in ones in ./migrations/.
 *
 * A database newer than the known migrations is refused (ERR_STORE_TOO_NEW)
 * before anything writes to it, including the switch to WAL.
 */
export function openStore(path: string, options: { migrations?: readonly Migration[] } = {}): Store {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw openError(path, error);
  }
  try {
    const migrations = options.migrations ?? loadMigrations();
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    // Before anything that writes (switching to WAL rewrites the header): a newer database stays untouched.
    refuseNewerDatabase(db, migrations);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    runMigrations(db, migrations);
  } catch (error) {
    db.close();
    if (error instanceof BangerError) throw error;
    throw openError(path, error);
  }
  return new Store(db, false);
}

/**
 * Opens an existing store for reading only (`banger doctor`): no migrations,
 * no journal-mode switch, and SQLite itself rejects writes (SQLITE_READONLY).
 * A missing file is ERR_STORE_MISSING up front rather than an empty database
 * created behind the caller's back. Note that reading a WAL database can leave
 * its -wal/-shm side files behind; the data itself is never changed.
 */
export function openReadOnly(path: string): Store {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    if (!existsSync(path)) {
      throw new BangerError('ERR_STORE_MISSING', `no store at ${path}`, {
        cause: error,
        hint: 'the daemon creates it on first start',
      });
    }
    throw openError(path, error);
  }
  try {
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    db.pragma('foreign_keys = ON');
    // Touch the schema now so a file that is not a database fails here, not at first use.
    db.prepare('SELECT count(*) FROM sqlite_master').get();
  } catch (error) {
    db.close();
    throw openError(path, error);
  }
  return new Store(db, true);
}

function isSqliteReadOnly(error: unknown): error is Error {
  // SQLITE_READONLY and its extended codes (SQLITE_READONLY_DBMOVED, ...).
  return error instanceof Database.SqliteError && error.code.startsWith('SQLITE_READONLY');
}

function openError(path: string, error: unknown): BangerError {
  const dir = dirname(path);
  const reason = error instanceof Error ? error.message : String(error);
  return new BangerError('ERR_STORE_OPEN', `cannot open the store at ${path}: ${reason}`, {
    cause: error,
    hint: existsSync(dir)
      ? `check that ${path} is a readable SQLite database and ${dir} is writable`
      : `${dir} does not exist; the daemon creates the state dir when it starts`,
  });
}
