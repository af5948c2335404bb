import { chmodSync, closeSync, constants, lstatSync, openSync } from 'node:fs';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { DAEMON_LOCK } from '../config/filenames.js';
import { BangerError, hasErrnoCode } from '../rpc/errors.js';

const RETRY_INTERVAL_MS = 100;

/**
 * One bangerd per runtime dir. The lock is a POSIX record lock (fcntl) on
 * `bangerd.lock` inside the runtime dir, taken through SQLite, which is how
 * Node can hold one: the file is opened as a database in exclusive locking
 * mode and an exclusive transaction is begun and never ended. A second
 * process gets SQLITE_BUSY at once (busy timeout 0), and so does a second
 * connection in the same process (SQLite tracks its locks per inode).
 *
 * Why this shape:
 * - Only the owner can take it: the runtime dir is 0700 and the file 0600,
 *   so no other user can open the file, let alone lock it. (An abstract
 *   unix socket name, by contrast, is one namespace for every local user.)
 * - Crash safe: the kernel drops a process's record locks the instant it
 *   dies, even on SIGKILL, so there is never a stale lock to break. Record
 *   locks are not inherited across fork/exec, so VMMs the daemon spawned
 *   never keep it held after the daemon is gone.
 * - The file itself is never written (no journal, nothing to commit) and
 *   never deleted: unlinking a lock file lets two processes lock two
 *   different inodes under one name.
 */
export class InstanceLock {
  readonly #db: Database.Database;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  /**
   * Takes the lock, retrying for up to `waitMs` (a daemon being replaced may
   * still be shutting down). Throws ERR_DAEMON_ALREADY_RUNNING when another
   * daemon holds it throughout. The runtime dir must already exist (it is
   * made private by ensureRuntimeDir first).
   */
  static async acquire(runtimeDir: string, waitMs = 0): Promise<InstanceLock> {
    const path = join(runtimeDir, DAEMON_LOCK);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const db = tryLock(path);
      if (db !== undefined) return new InstanceLock(db);
      if (Date.now() >= deadline) {
        throw new BangerError('ERR_DAEMON_ALREADY_RUNNING', `another bangerd already serves ${runtimeDir}`, {
          hint: 'use `banger daemon status` to see it, or `banger daemon stop` to stop it',
        });
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_INTERVAL_MS));
    }
  }

  /** Drops the lock (closing the handle releases the record lock). Idempotent. */
  release(): Promise<void> {
    if (this.#db.open) this.#db.close();
    return Promise.resolve();
  }
}

/** The locked handle, or undefined when someone else holds the lock. */
function tryLock(path: string): Database.Database | undefined {
  preparePrivateFile(path);
  const db = new Database(path, { timeout: 0 });
  try {
    // Nothing is ever written; an in-memory journal keeps a SIGKILLed holder from leaving a -journal file behind.
    // (journal_mode = OFF is refused under better-sqlite3's defensive mode.)
    db.pragma('journal_mode = MEMORY');
    db.pragma('locking_mode = EXCLUSIVE');
    db.exec('BEGIN EXCLUSIVE');
    return db;
  } catch (error) {
    db.close();
    if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_BUSY')) return undefined;
    throw new BangerError('ERR_DAEMON_START_FAILED', `cannot take the daemon lock ${path}: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
      hint: `the lock is an empty file banger never writes; remove ${path} and start again`,
    });
  }
}

/**
 * Makes sure the lock file is a regular file at 0600 (SQLite would create it
 * 0644 less the umask) without ever opening and closing a descriptor on an
 * existing one: closing any descriptor of a file drops every record lock this
 * process holds on it, which would silently free a lock held here.
 */
function preparePrivateFile(path: string): void {
  try {
    closeSync(openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600));
    return;
  } catch (error) {
    if (!hasErrnoCode(error, 'EEXIST')) throw error;
  }
  const stat = lstatSync(path);
  if (!stat.isFile()) throw new BangerError('ERR_DAEMON_START_FAILED', `${path} is not a regular file`, { hint: `remove ${path} and start again` });
  if ((stat.mode & 0o777) !== 0o600) chmodSync(path, 0o600);
}
