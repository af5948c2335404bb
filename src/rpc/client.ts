import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

import { BangerError } from './errors.js';
import {
  EVENT_NOTIFICATION,
  methods,
  PROGRESS_NOTIFICATION,
  type DaemonEvent,
  type DaemonEventKind,
  type MethodKey,
  type ParamsOf,
  type ProgressEvent,
  type ResultOf,
} from './methods.js';
import { decodeError } from './wire.js';

/**
 * The client side of banger's JSON-RPC: JSON-RPC 2.0 in the LSP base
 * protocol's framing (`Content-Length: N\r\n\r\n` + N bytes of JSON), the
 * same that the daemon's vscode-jsonrpc speaks. Written out here because it
 * is small and the CLI starts for every command: loading a full JSON-RPC
 * library cost more than the rest of a `vm exec`'s CLI start-up.
 * Cancellation uses the protocol's `$/cancelRequest` notification.
 */

export interface CallOptions {
  /** Aborting sends a JSON-RPC cancellation for the request and rejects with ERR_CANCELLED. */
  signal?: AbortSignal | undefined;
  /** Receives the request's progress events (the method must accept a progressToken). */
  onProgress?: ((event: ProgressEvent) => void) | undefined;
}

interface Pending {
  resolve: (result: unknown) => void;
  reject: (error: BangerError) => void;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CANCEL_NOTIFICATION = '$/cancelRequest';

/** A connection to bangerd that speaks the typed method table. */
export class RpcClient {
  readonly #socket: Socket;
  #isClosed = false;
  #nextId = 1;
  #buffer: Buffer = Buffer.alloc(0);
  readonly #pending = new Map<number, Pending>();
  readonly #progressListeners = new Map<string, (event: ProgressEvent) => void>();
  readonly #eventListeners = new Map<string, (event: DaemonEvent) => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#receive(chunk);
    });
    socket.on('close', () => {
      this.#isClosed = true;
      for (const pending of this.#pending.values()) pending.reject(daemonGone());
      this.#pending.clear();
    });
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
      const id = this.#nextId++;
      let sentParams: object = params as object;
      let progressToken: string | undefined;
      if (options.onProgress !== undefined) {
        progressToken = randomBytes(8).toString('hex');
        this.#progressListeners.set(progressToken, options.onProgress);
        sentParams = { ...(params as object), progressToken };
      }
      const finish = (): void => {
        this.#pending.delete(id);
        if (progressToken !== undefined) this.#progressListeners.delete(progressToken);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        finish();
        this.#send({ jsonrpc: '2.0', method: CANCEL_NOTIFICATION, params: { id } });
        reject(new BangerError('ERR_CANCELLED', 'request cancelled'));
      };
      this.#pending.set(id, {
        resolve: (result) => {
          finish();
          resolve(result as ResultOf<K>);
        },
        reject: (error) => {
          finish();
          reject(error);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#send({ jsonrpc: '2.0', id, method: methods[key].name, params: sentParams });
      if (signal?.aborted === true) onAbort();
    });
  }

  /**
   * Subscribes to daemon events (daemon.events): `onEvent` gets each one
   * until `signal` aborts, which ends the subscription and resolves; it
   * rejects when the daemon goes away or refuses the subscription.
   */
  async subscribe(onEvent: (event: DaemonEvent) => void, options: { kinds?: DaemonEventKind[]; signal: AbortSignal }): Promise<void> {
    const subscriptionToken = randomBytes(8).toString('hex');
    this.#eventListeners.set(subscriptionToken, onEvent);
    try {
      await this.call('events', { subscriptionToken, ...(options.kinds === undefined ? {} : { kinds: options.kinds }) }, { signal: options.signal });
    } catch (error) {
      if (!(options.signal.aborted && error instanceof BangerError && error.code === 'ERR_CANCELLED')) throw error;
    } finally {
      this.#eventListeners.delete(subscriptionToken);
    }
  }

  /** Whether the connection is gone: closed here, or by the daemon (it stopped or restarted). */
  get closed(): boolean {
    return this.#isClosed;
  }

  close(): void {
    this.#isClosed = true;
    this.#socket.destroy();
  }

  #send(message: object): void {
    const body = Buffer.from(JSON.stringify(message), 'utf8');
    this.#socket.write(Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]));
  }

  #receive(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const headerEnd = this.#buffer.indexOf(HEADER_END);
      if (headerEnd < 0) return;
      const length = /Content-Length:\s*(\d+)/i.exec(this.#buffer.subarray(0, headerEnd).toString('ascii'))?.[1];
      if (length === undefined) {
        this.#socket.destroy();
        return;
      }
      const start = headerEnd + HEADER_END.length;
      const end = start + Number(length);
      if (this.#buffer.length < end) return;
      const body = this.#buffer.subarray(start, end).toString('utf8');
      this.#buffer = this.#buffer.subarray(end);
      this.#dispatch(JSON.parse(body) as Message);
    }
  }

  #dispatch(message: Message): void {
    if (message.id === undefined || message.id === null) {
      if (message.method === PROGRESS_NOTIFICATION) {
        const event = message.params as ProgressEvent;
        this.#progressListeners.get(event.token)?.(event);
      } else if (message.method === EVENT_NOTIFICATION) {
        const event = message.params as DaemonEvent;
        this.#eventListeners.get(event.token)?.(event);
      }
      return;
    }
    const pending = this.#pending.get(Number(message.id));
    if (pending === undefined) return;
    if (message.error !== undefined) pending.reject(decodeError(message.error));
    else pending.resolve(message.result);
  }
}

interface Message {
  id?: number | string | null;
  method?: string;
  params?: unknown;
  result?: unknown;
  error?: unknown;
}

function daemonGone(): BangerError {
  return new BangerError('ERR_DAEMON_UNREACHABLE', 'the daemon closed the connection', {
    hint: 'see `banger daemon logs` for what happened to bangerd',
  });
}
