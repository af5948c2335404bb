import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import {
  createMessageConnection,
  ErrorCodes,
  ResponseError,
  StreamMessageWriter,
  type CancellationToken,
  type MessageConnection,
  type ResponseMessage,
} from 'vscode-jsonrpc/node';

import { BangerError, toBangerError } from '../rpc/errors.js';
import { methods, PROGRESS_NOTIFICATION, type MethodKey, type ParamsOf, type ProgressEvent, type ResultOf } from '../rpc/methods.js';
import { STREAM_FIRST_BYTE } from '../rpc/stream.js';
import { describeValue } from '../rpc/validation.js';
import { encodeError } from '../rpc/wire.js';
import type { OpContext } from '../services/op-context.js';
import type { Logger } from './logger.js';
import { CheckedMessageReader } from './message-reader.js';
import type { StreamHub } from './stream-hub.js';

export type { OpContext };

export type DaemonHandlers = {
  [K in MethodKey]: (params: ParamsOf<K>, ctx: OpContext) => Promise<ResultOf<K>>;
};

/** Method keys by wire name. A Map: a name such as "constructor" must not find an Object.prototype member. */
const METHOD_KEYS = new Map<string, MethodKey>((Object.keys(methods) as MethodKey[]).map((key) => [methods[key].name, key]));

/** Methods polled on every CLI call; logged at debug so they don't drown the log. */
const QUIET_METHODS = new Set<string>([methods.ping.name]);

/**
 * Requests that stay open until their client cancels them (daemon.events).
 * A shutdown ends them at once instead of waiting out its grace period for
 * them, and refuses new ones while it drains.
 */
const SUBSCRIPTION_METHODS = new Set<string>([methods.events.name]);

interface InFlight {
  controller: AbortController;
  done: Promise<void>;
  subscription: boolean;
}

/**
 * Serves the method table over JSON-RPC on the daemon's unix socket. Owns the
 * per-request plumbing: op ids, child loggers, cancellation (client cancel,
 * client disconnect, shutdown) and error encoding.
 */
export class RpcServer {
  readonly #server: Server;
  readonly #handlers: DaemonHandlers;
  readonly #log: Logger;
  readonly #connections = new Set<{ socket: Duplex; connection: MessageConnection }>();
  readonly #inFlight = new Set<InFlight>();
  readonly #streams: StreamHub;
  /** Connected sockets that have not said yet whether they speak JSON-RPC or carry a stream. */
  readonly #undecided = new Set<Socket>();
  #draining = false;

  constructor(handlers: DaemonHandlers, log: Logger, streams: StreamHub) {
    this.#handlers = handlers;
    this.#log = log;
    this.#streams = streams;
    this.#server = createServer((socket) => {
      this.#route(socket);
    });
  }

  get inFlightCount(): number {
    return this.#inFlight.size;
  }

  /**
   * Listens on `socketPath`, replacing a stale socket file. The caller must
   * hold the instance lock (so the file cannot belong to a live daemon) and
   * have set a 0077 umask; the chmod is belt and braces.
   */
  listen(socketPath: string): Promise<void> {
    rmSync(socketPath, { force: true });
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(socketPath, () => {
        this.#server.off('error', reject);
        chmodSync(socketPath, 0o600);
        resolve();
      });
    });
  }

  /** Stops accepting connections; existing ones keep being served. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => {
        resolve();
      });
    });
  }

  /**
   * Lets in-flight requests finish for up to `graceMs`, then cancels the rest
   * and waits for them to wind down, then closes every connection.
   */
  async drain(graceMs: number): Promise<void> {
    // Subscriptions never finish by themselves: they end now, telling their clients the daemon is going.
    this.#draining = true;
    for (const entry of this.#inFlight) if (entry.subscription) entry.controller.abort(shutdownError());
    const settled = Promise.all([...this.#inFlight].map((entry) => entry.done));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      settled.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => {
          resolve(true);
        }, graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.#log.warn({ in_flight: this.#inFlight.size }, 'shutdown grace period over, cancelling requests');
      for (const entry of this.#inFlight) entry.controller.abort(shutdownError());
      await Promise.all([...this.#inFlight].map((entry) => entry.done));
    }
    // Let the last responses reach their sockets, then close each one gracefully.
    await new Promise((resolve) => setImmediate(resolve));
    await Promise.all([...this.#connections].map(({ connection, socket }) => closeGracefully(connection, socket)));
    this.#streams.closeAll();
    for (const socket of this.#undecided) socket.destroy();
  }

  /** The first byte tells a stream connection ('B', see src/rpc/stream.ts) from JSON-RPC ('C'ontent-Length). */
  #route(socket: Socket): void {
    this.#undecided.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => this.#undecided.delete(socket));
    socket.once('data', (first: Buffer) => {
      socket.pause();
      this.#undecided.delete(socket);
      if (first[0] === STREAM_FIRST_BYTE) {
        this.#streams.accept(socket, first);
        return;
      }
      socket.unshift(first);
      this.serveConnection(socket);
      socket.resume();
    });
  }

  /**
   * Serves JSON-RPC on a connection known to speak it: the socket path comes
   * here once routed, and tests drive it with an in-memory stream.
   */
  serveConnection(socket: Duplex): void {
    const writer = new StreamMessageWriter(socket);
    // Answers to messages the reader refuses; a connection broken by bad framing is closed only after they are written.
    let refusals: Promise<void> = Promise.resolve();
    const reader = new CheckedMessageReader(socket, (refusal) => {
      this.#log.warn({ code: refusal.code, reason: refusal.message }, 'refused a message');
      const reply: ResponseMessage = { jsonrpc: '2.0', id: refusal.id, error: { code: refusal.code, message: refusal.message } };
      refusals = refusals.then(() => writer.write(reply)).catch(() => undefined);
    });
    reader.onError((error) => {
      this.#log.warn({ err_message: error.message }, 'closing a connection that cannot be read');
      void refusals.then(() => socket.destroy());
    });
    const connection = createMessageConnection(reader, writer);
    const entry = { socket, connection };
    const requests = new Set<AbortController>();
    // Set once the client is gone. A request read before its client went but
    // not yet dispatched (vscode-jsonrpc dispatches from a queue) must not run
    // as if someone were waiting for it.
    let closed = false;
    this.#connections.add(entry);
    socket.on('error', () => undefined);
    connection.onClose(() => {
      closed = true;
      this.#connections.delete(entry);
      for (const controller of requests) controller.abort(disconnectedError());
    });
    // One handler for every method: vscode-jsonrpc hands it the raw params. A
    // per-method handler would get positional params spread as arguments and,
    // with params left out, the cancellation token in their place.
    connection.onRequest((method: string, params: unknown, token: CancellationToken) => {
      const key = METHOD_KEYS.get(method);
      if (key === undefined) return Promise.reject(new ResponseError(ErrorCodes.MethodNotFound, `unknown method ${describeValue(method)}`));
      const controller = new AbortController();
      const subscription = SUBSCRIPTION_METHODS.has(method);
      if (closed) controller.abort(disconnectedError());
      else if (token.isCancellationRequested) controller.abort(cancelledError());
      else if (subscription && this.#draining) controller.abort(shutdownError());
      token.onCancellationRequested(() => {
        controller.abort(cancelledError());
      });
      requests.add(controller);
      // Registered before the handler runs, so a request counts itself (ping's inFlight includes it).
      let finished!: () => void;
      const inFlight: InFlight = { controller, done: new Promise<void>((resolve) => (finished = resolve)), subscription };
      this.#inFlight.add(inFlight);
      const result = this.#serve(key, params, controller, connection);
      void result
        .catch(() => undefined)
        .then(() => {
          this.#inFlight.delete(inFlight);
          requests.delete(controller);
          finished();
        });
      return result;
    });
    connection.listen();
  }

  async #serve(key: MethodKey, params: unknown, controller: AbortController, connection: MessageConnection): Promise<unknown> {
    const opId = `op_${randomBytes(6).toString('hex')}`;
    const method = methods[key].name;
    const log = this.#log.child({ op_id: opId, method });
    const quiet = QUIET_METHODS.has(method);
    const started = performance.now();
    if (quiet) log.debug('request started');
    else log.info('request started');
    const handler = this.#handlers[key] as (params: unknown, ctx: OpContext) => Promise<unknown>;
    const token = progressTokenOf(params);
    let lastStage: string | undefined;
    const progress: OpContext['progress'] = (stage, detail, counts) => {
      if (stage !== lastStage) log.info({ stage, detail }, 'progress');
      lastStage = stage;
      if (typeof token !== 'string' || controller.signal.aborted) return;
      const event: ProgressEvent = { token, stage, detail };
      if (counts !== undefined) {
        event.current = counts.current;
        if (counts.total !== undefined) event.total = counts.total;
      }
      void connection.sendNotification(PROGRESS_NOTIFICATION, event).catch(() => undefined);
    };
    const notify: NonNullable<OpContext['notify']> = (name, payload) => {
      if (controller.signal.aborted) return;
      void connection.sendNotification(name, payload).catch(() => undefined);
    };
    try {
      // Cancelled before it started (its client is gone, or cancelled it while it was queued): the handler never runs.
      controller.signal.throwIfAborted();
      // Params left out are checked as {} (see parseParams); anything else as sent.
      const result = await handler(params, { opId, signal: controller.signal, log, progress, notify });
      const ms = Math.round(performance.now() - started);
      if (quiet) log.debug({ ms }, 'request finished');
      else log.info({ ms }, 'request finished');
      return result;
    } catch (thrown) {
      const ms = Math.round(performance.now() - started);
      const error = controller.signal.aborted ? toBangerError(controller.signal.reason) : toBangerError(thrown);
      if (error.code === 'ERR_CANCELLED') log.info({ ms, reason: error.message }, 'request cancelled');
      else if (error.code === 'ERR_INTERNAL') log.error({ ms, err: thrown }, 'request failed');
      else log.warn({ ms, code: error.code, err_message: error.message }, 'request failed');
      const wire = encodeError(error, opId);
      throw new ResponseError(wire.code, wire.message, wire.data);
    }
  }
}

const SOCKET_CLOSE_TIMEOUT_MS = 1000;

/** Ends the socket after pending writes flush; destroys it if the peer does not close in time. */
function closeGracefully(connection: MessageConnection, socket: Duplex): Promise<void> {
  if (socket.destroyed) {
    connection.dispose();
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.destroy();
    }, SOCKET_CLOSE_TIMEOUT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      connection.dispose();
      resolve();
    });
    socket.end();
  });
}

/** The progress token a request's params carry, if any (they are checked only once the handler runs). */
function progressTokenOf(params: unknown): unknown {
  return typeof params === 'object' && params !== null && !Array.isArray(params) ? (params as { progressToken?: unknown }).progressToken : undefined;
}

function cancelledError(): BangerError {
  return new BangerError('ERR_CANCELLED', 'request cancelled by the client');
}

function disconnectedError(): BangerError {
  return new BangerError('ERR_CANCELLED', 'client disconnected');
}

function shutdownError(): BangerError {
  return new BangerError('ERR_DAEMON_SHUTTING_DOWN', 'the daemon is shutting down', {
    hint: 'run the command again; the daemon starts on demand',
  });
}
