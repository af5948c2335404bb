import { connect, type Socket } from 'node:net';

import { BangerError, hasErrnoCode, isErrorCode } from '../rpc/errors.js';
import { PrivilegedOps } from './privileged-ops.js';
import { lineReader, type HelperRequest, type HelperResponse } from './protocol.js';

/** An operation the helper has not answered in this long is failed (host commands take milliseconds). */
const CALL_TIMEOUT_MS = 60_000;

const INSTALL_HINT = 'install and start the root helper: `sudo banger system install` (then `banger doctor`)';

/**
 * PrivilegedOps carried out by the root helper over its unix socket. One
 * connection, opened on first use and again after it drops; calls may be in
 * flight together (each has an id). The socket's file permissions are what
 * tell the helper who is calling: it is owned by this user, mode 0600.
 */
export class HelperClient extends PrivilegedOps {
  readonly mode = 'helper';
  readonly socketPath: string;
  #socket: Promise<Socket> | undefined;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void; timer: NodeJS.Timeout }>();

  constructor(socketPath: string) {
    super();
    this.socketPath = socketPath;
  }

  protected async call(op: string, args: Record<string, unknown>): Promise<unknown> {
    const socket = await this.#connection();
    const id = this.#nextId++;
    const request: HelperRequest = { id, op, args };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new BangerError('ERR_HELPER_UNREACHABLE', `the root helper did not answer ${op} within ${CALL_TIMEOUT_MS / 1000}s`, { hint: INSTALL_HINT }));
      }, CALL_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      socket.write(JSON.stringify(request) + '\n');
    });
  }

  /** Closes the connection; calls in flight fail. */
  close(): void {
    void this.#socket?.then((socket) => socket.destroy()).catch(() => undefined);
    this.#socket = undefined;
  }

  #connection(): Promise<Socket> {
    this.#socket ??= new Promise<Socket>((resolve, reject) => {
      const socket = connect(this.socketPath);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(socket);
      });
      socket.once('error', (error) => {
        this.#socket = undefined;
        reject(unreachable(this.socketPath, error));
      });
      socket.on(
        'data',
        lineReader(
          (line) => {
            this.#settle(line);
          },
          () => socket.destroy(),
        ),
      );
      socket.on('close', () => {
        this.#socket = undefined;
        for (const [id, pending] of this.#pending) {
          clearTimeout(pending.timer);
          pending.reject(new BangerError('ERR_HELPER_UNREACHABLE', 'the root helper closed the connection', { hint: INSTALL_HINT }));
          this.#pending.delete(id);
        }
      });
    });
    return this.#socket;
  }

  #settle(line: string): void {
    let response: HelperResponse;
    try {
      response = JSON.parse(line) as HelperResponse;
    } catch {
      return;
    }
    const pending = this.#pending.get(response.id);
    if (pending === undefined) return;
    this.#pending.delete(response.id);
    clearTimeout(pending.timer);
    if ('error' in response) {
      const { code, message, hint } = response.error;
      pending.reject(new BangerError(isErrorCode(code) ? code : 'ERR_HELPER_REFUSED', `root helper: ${message}`, hint === undefined ? {} : { hint }));
    } else {
      pending.resolve(response.result);
    }
  }
}

function unreachable(path: string, error: Error): BangerError {
  if (hasErrnoCode(error, 'EACCES')) {
    return new BangerError('ERR_HELPER_UNREACHABLE', `the root helper's socket ${path} belongs to another user`, {
      cause: error,
      hint: 'each user gets their own socket: run `sudo banger system install` as yourself',
    });
  }
  return new BangerError('ERR_HELPER_UNREACHABLE', `cannot reach the root helper at ${path}: ${error.message}`, { cause: error, hint: INSTALL_HINT });
}
