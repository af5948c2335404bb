import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';

import { BangerError, hasErrnoCode } from '../rpc/errors.js';

/**
 * One bangerd per runtime dir. The lock is a Linux abstract-namespace unix
 * socket whose name derives from the runtime dir: binding it is atomic, and
 * the kernel releases it the instant the process dies (even on SIGKILL), so
 * there is no stale lock file to break and no race in breaking one. The
 * socket accepts no connections that matter; it only exists.
 */
export class InstanceLock {
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static lockName(runtimeDir: string): string {
    const digest = createHash('sha256').update(runtimeDir).digest('hex').slice(0, 24);
    return `\0banger-daemon-${digest}`;
  }

  /**
   * Takes the lock, retrying for up to `waitMs` (a daemon being replaced may
   * still be shutting down). Throws ERR_DAEMON_ALREADY_RUNNING when another
   * daemon holds it throughout.
   */
  static async acquire(runtimeDir: string, waitMs = 0): Promise<InstanceLock> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      try {
        return new InstanceLock(await listen(InstanceLock.lockName(runtimeDir)));
      } catch (error) {
        if (!hasErrnoCode(error, 'EADDRINUSE')) throw error;
        if (Date.now() >= deadline) {
          throw new BangerError('ERR_DAEMON_ALREADY_RUNNING', `another bangerd already serves ${runtimeDir}`, {
            hint: 'use `banger daemon status` to see it, or `banger daemon stop` to stop it',
          });
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  release(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }
}

function listen(name: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen(name, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
