import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Readable, Writable } from 'node:stream';

import { BangerError } from '../rpc/errors.js';
import {
  decodeResize,
  readFrames,
  FrameKind,
  STREAM_HEADER_MAX,
  STREAM_HEADER_PREFIX,
  STREAM_TOKEN_PATTERN,
  whenWritable,
  writeFrames,
  type FrameKindValue,
} from '../rpc/stream.js';
import type { ClientStream } from '../services/client-stream.js';
import type { Logger } from './logger.js';

/** How long a stream connection waits for the request that claims it, and a request for its stream. */
const PAIRING_TIMEOUT_MS = 15_000;

/**
 * Pairs stream connections (src/rpc/stream.ts) with the requests that use
 * them: a connection announces a token, a request claims it by the same
 * token, whichever comes first waits for the other. An unclaimed connection
 * is dropped after PAIRING_TIMEOUT_MS.
 */
export class StreamHub {
  readonly #log: Logger;
  readonly #unclaimed = new Map<string, { stream: SocketClientStream; timer: NodeJS.Timeout }>();
  readonly #claims = new Map<string, (stream: SocketClientStream) => void>();
  readonly #open = new Set<Socket>();

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Takes a connection whose first bytes are `first` (starting with the stream header). */
  accept(socket: Socket, first: Buffer): void {
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
    let pending = first;
    const take = (): void => {
      const newline = pending.indexOf(0x0a);
      if (newline < 0) {
        if (pending.length > STREAM_HEADER_MAX) socket.destroy();
        return;
      }
      socket.off('data', onData);
      socket.pause();
      const line = pending.subarray(0, newline).toString('latin1');
      const token = line.startsWith(STREAM_HEADER_PREFIX) ? line.slice(STREAM_HEADER_PREFIX.length) : '';
      if (!STREAM_TOKEN_PATTERN.test(token) || this.#unclaimed.has(token)) {
        this.#log.warn('stream connection with a malformed or duplicate header, dropped');
        socket.destroy();
        return;
      }
      const stream = new SocketClientStream(socket, pending.subarray(newline + 1));
      const claim = this.#claims.get(token);
      if (claim !== undefined) {
        this.#claims.delete(token);
        claim(stream);
        return;
      }
      const timer = setTimeout(() => {
        this.#unclaimed.delete(token);
        socket.destroy();
      }, PAIRING_TIMEOUT_MS);
      this.#unclaimed.set(token, { stream, timer });
    };
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      take();
    };
    socket.on('data', onData);
    socket.on('error', () => undefined);
    take();
  }

  /** The stream connection announced with `token`, once it arrives. */
  claim(token: string, signal: AbortSignal): Promise<SocketClientStream> {
    if (!STREAM_TOKEN_PATTERN.test(token)) return Promise.reject(new BangerError('ERR_INVALID_ARGUMENT', 'param "streamToken" must be 32 hex digits'));
    const waiting = this.#unclaimed.get(token);
    if (waiting !== undefined) {
      clearTimeout(waiting.timer);
      this.#unclaimed.delete(token);
      return Promise.resolve(waiting.stream);
    }
    if (this.#claims.has(token)) return Promise.reject(new BangerError('ERR_INVALID_ARGUMENT', 'this stream token is already being claimed'));
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.#claims.delete(token);
      };
      const onAbort = (): void => {
        done();
        reject(signal.reason instanceof Error ? signal.reason : new BangerError('ERR_CANCELLED', 'cancelled'));
      };
      const timer = setTimeout(() => {
        done();
        reject(
          new BangerError('ERR_INVALID_ARGUMENT', 'the stream connection for this request never arrived', {
            hint: 'clients open the stream connection before calling the method',
          }),
        );
      }, PAIRING_TIMEOUT_MS);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#claims.set(token, (stream) => {
        done();
        resolve(stream);
      });
    });
  }

  /** Drops every stream connection (daemon shutdown). */
  closeAll(): void {
    for (const socket of this.#open) socket.destroy();
    for (const { timer } of this.#unclaimed.values()) clearTimeout(timer);
    this.#unclaimed.clear();
  }
}

/**
 * One claimed stream connection as a ClientStream: output is framed onto the
 * socket (a full socket buffer pushes back on the writer), input frames feed
 * stdin and the signal/resize listeners.
 */
export class SocketClientStream implements ClientStream {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly #socket: Socket;
  readonly #events = new EventEmitter();
  readonly #gone = new AbortController();
  /** Signals that arrived before anyone listened (a Ctrl-C while the command was still starting). */
  readonly #earlySignals: string[] = [];

  constructor(socket: Socket, leftover: Buffer) {
    this.#socket = socket;
    this.stdin = new Readable({
      read: () => {
        socket.resume();
      },
    });
    this.stdout = this.#framed(FrameKind.stdout);
    this.stderr = this.#framed(FrameKind.stderr);
    const feed = readFrames(socket, (frame) => {
      this.#onFrame(frame.kind, frame.payload);
    });
    socket.once('close', () => {
      this.#gone.abort(new BangerError('ERR_CANCELLED', 'the client closed its stream'));
      if (!this.stdin.readableEnded) this.stdin.push(null);
    });
    if (leftover.length > 0) feed(leftover);
    socket.resume();
  }

  get gone(): AbortSignal {
    return this.#gone.signal;
  }

  notice(text: string): void {
    this.#write(FrameKind.notice, Buffer.from(text, 'utf8'));
  }

  onSignal(listener: (name: string) => void): void {
    this.#events.on('signal', listener);
    for (const name of this.#earlySignals.splice(0)) listener(name);
  }

  onResize(listener: (cols: number, rows: number) => void): void {
    this.#events.on('resize', listener);
  }

  /** Ends the connection after everything written so far has been flushed. */
  async end(): Promise<void> {
    await Promise.all(
      [this.stdout, this.stderr].map(
        (writable) =>
          new Promise<void>((resolve) => {
            writable.end(() => {
              resolve();
            });
          }),
      ),
    );
    if (this.#socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.#socket.end(() => {
        resolve();
      });
      this.#socket.once('close', () => {
        resolve();
      });
    });
  }

  #onFrame(kind: FrameKindValue, payload: Buffer): void {
    switch (kind) {
      case FrameKind.stdin:
        if (!this.stdin.readableEnded && !this.stdin.push(payload)) this.#socket.pause();
        break;
      case FrameKind.stdinEnd:
        if (!this.stdin.readableEnded) this.stdin.push(null);
        break;
      case FrameKind.signal:
        if (this.#events.listenerCount('signal') === 0) this.#earlySignals.push(payload.toString('latin1'));
        else this.#events.emit('signal', payload.toString('latin1'));
        break;
      case FrameKind.resize: {
        const size = decodeResize(payload);
        if (size !== undefined) this.#events.emit('resize', size.cols, size.rows);
        break;
      }
      default:
        // Output kinds travel the other way; a client sending them is ignored.
        break;
    }
  }

  #write(kind: FrameKindValue, payload: Buffer): boolean {
    return writeFrames(this.#socket, kind, payload);
  }

  #framed(kind: FrameKindValue): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.#write(kind, chunk)) callback();
        // Whichever comes first: room in the socket, or the client gone (then output has nowhere to go).
        else
          void whenWritable(this.#socket).then(() => {
            callback();
          });
      },
    });
  }
}
