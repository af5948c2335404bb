import { connect, type Socket } from 'node:net';

import {
  CancellationTokenSource,
  createMessageConnection,
  SocketMessageReader,
  SocketMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';

import { BangerError } from './errors.js';
import { randomBytes } from 'node:crypto';

import { methods, PROGRESS_NOTIFICATION, type MethodKey, type ParamsOf, type ProgressEvent, type ResultOf } from './methods.js';
import { decodeError } from './wire.js';

export interface CallOptions {
  /** Aborting sends a JSON-RPC cancellation for the request and rejects with ERR_CANCELLED. */
  signal?: AbortSignal | undefined;
  /** Receives the request's progress events (the method must accept a progressToken). */
  onProgress?: ((event: ProgressEvent) => void) | undefined;
}

/** A connection to bangerd that speaks the typed method table. */
export class RpcClient {
  readonly #socket: Socket;
  readonly #connection: MessageConnection;
  #isClosed = false;
  readonly #progressListeners = new Map<string, (event: ProgressEvent) => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#connection = createMessageConnection(new SocketMessageReader(socket), new SocketMessageWriter(socket));
    this.#connection.onClose(() => {
      this.#isClosed = true;
    });
    this.#connection.onNotification(PROGRESS_NOTIFICATION, (event: ProgressEvent) => {
      this.#progressListeners.get(event.token)?.(event);
    });
    this.#connection.listen();
  }

  /** Connects to the daemon socket; rejects with the raw socket error (ENOENT, ECONNREFUSED…). */
  static connect(socketPath: string): Promise<RpcClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const onError = (error: Error): void => {
        socket.destroy();
        reject(error);
      };
      socket.once('error', onError);
      socket.once('connect', () => {
        socket.off('error', onError);
        // Errors after connect surface as connection close and failed calls.
        socket.on('error', () => undefined);
        resolve(new RpcClient(socket));
      });
    });
  }

  call<K extends MethodKey>(key: K, params: ParamsOf<K>, options: CallOptions = {}): Promise<ResultOf<K>> {
    const { signal } = options;
    return new Promise<ResultOf<K>>((resolve, reject) => {
      if (this.#isClosed) {
        reject(daemonGone());
        return;
      }
      const source = new CancellationTokenSource();
      let sentParams: object = params as object;
      let progressToken: string | undefined;
      if (options.onProgress !== undefined) {
        progressToken = randomBytes(8).toString('hex');
        this.#progressListeners.set(progressToken, options.onProgress);
        sentParams = { ...(params as object), progressToken };
      }
      let settled = false;
      const settle = (action: () => void): void => {
        if (settled) return;
        settled = true;
        if (progressToken !== undefined) this.#progressListeners.delete(progressToken);
        signal?.removeEventListener('abort', onAbort);
        closeSubscription.dispose();
        source.dispose();
        action();
      };
      const onAbort = (): void => {
        source.cancel();
        settle(() => {
          reject(new BangerError('ERR_CANCELLED', 'request cancelled'));
        });
      };
      const closeSubscription = this.#connection.onClose(() => {
        settle(() => {
          reject(daemonGone());
        });
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#connection.sendRequest<ResultOf<K>>(methods[key].name, sentParams, source.token).then(
        (result) => {
          settle(() => {
            resolve(result);
          });
        },
        (error: unknown) => {
          settle(() => {
            reject(decodeError(error));
          });
        },
      );
      if (signal?.aborted === true) onAbort();
    });
  }

  close(): void {
    this.#isClosed = true;
    this.#connection.dispose();
    this.#socket.destroy();
  }
}

function daemonGone(): BangerError {
  return new BangerError('ERR_DAEMON_UNREACHABLE', 'the daemon closed the connection', {
    hint: 'see `banger daemon logs` for what happened to bangerd',
  });
}
