import { existsSync } from 'node:fs';

import Database from 'better-sqlite3';

import { BangerError } from '../rpc/errors.js';
import {
  appliedMigrations,
  loadMigrations,
  refuseNewerDatabase,
  runMigrations,
  type AppliedMigration,
  type Migration,
} from './migrations.js';

const BUSY_TIMEOUT_MS = 5000;

/**
 * banger's SQLite store. `openStore` is for the daemon (creates the file and
 * migrates it); `openReadOnly` is for diagnostics that must change nothing.
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

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * Opens (creating if needed) and migrates the store. The parent directory
 * must exist. Every connection gets the same profile: WAL, busy timeout,
 * foreign keys, synchronous=NORMAL (safe with WAL).
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
 * Opens an existing store for reading only: no migrations, no journal-mode
 * switch, and SQLite itself rejects writes. A missing file is an error up
 * front rather than an empty database created behind the caller's back.
 */
export function openReadOnly(path: string): Store {
  if (!existsSync(path)) {
    throw new BangerError('ERR_STORE_MISSING', `no store at ${path}`, { hint: 'the daemon creates it on first start' });
  }
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
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

function openError(path: string, error: unknown): BangerError {
  return new BangerError('ERR_STORE_OPEN', `cannot open the store at ${path}: ${(error as Error).message}`, {
    cause: error,
    hint: `check that ${path} is a readable SQLite database and its directory is writable`,
  });
}
