import { connect, type Socket } from 'node:net';
import type { Writable } from 'node:stream';

import { BangerError } from '../rpc/errors.js';
import { encodeResize, FrameKind, newStreamToken, readFrames, streamHeader, whenWritable, writeFrames, type FrameKindValue } from '../rpc/stream.js';

/**
 * The client end of a stream connection (src/rpc/stream.ts): opened before
 * the request that uses it, it writes the daemon's stdout/stderr frames to
 * the given sinks (pausing the socket when a sink is full) and hands notices
 * to `onNotice`. `done` resolves when the daemon has ended the stream, i.e.
 * every byte of output has arrived.
 */
export class StreamClient {
  readonly token = newStreamToken();
  readonly done: Promise<void>;
  readonly #socket: Socket;

  private constructor(socket: Socket, sinks: { stdout: Writable; stderr: Writable; onNotice: (text: string) => void }) {
    this.#socket = socket;
    const sinkFor = (kind: number): Writable | undefined => (kind === FrameKind.stdout ? sinks.stdout : kind === FrameKind.stderr ? sinks.stderr : undefined);
    readFrames(socket, (frame) => {
      if (frame.kind === FrameKind.notice) {
        sinks.onNotice(frame.payload.toString('utf8'));
        return;
      }
      const sink = sinkFor(frame.kind);
      if (sink !== undefined && !sink.write(frame.payload)) {
        socket.pause();
        sink.once('drain', () => socket.resume());
      }
    });
    this.done = new Promise((resolve) => {
      socket.once('close', () => {
        resolve();
      });
    });
  }

  /** Connects to the daemon socket and announces the stream. */
  static open(socketPath: string, sinks: { stdout: Writable; stderr: Writable; onNotice: (text: string) => void }): Promise<StreamClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      socket.once('error', (error) => {
        reject(new BangerError('ERR_DAEMON_UNREACHABLE', `cannot open a stream to bangerd: ${error.message}`, { cause: error }));
      });
      socket.once('connect', () => {
        socket.on('error', () => undefined);
        const client = new StreamClient(socket, sinks);
        socket.write(streamHeader(client.token));
        resolve(client);
      });
    });
  }

  /** Sends stdin bytes; false when the socket is full (wait for `drained`). */
  stdin(data: Buffer): boolean {
    return this.#send(FrameKind.stdin, data);
  }

  endStdin(): void {
    this.#send(FrameKind.stdinEnd);
  }

  signal(name: string): void {
    this.#send(FrameKind.signal, Buffer.from(name, 'latin1'));
  }

  resize(cols: number, rows: number): void {
    this.#send(FrameKind.resize, encodeResize(cols, rows));
  }

  /** Resolves when the socket can take more input. */
  drained(): Promise<void> {
    return whenWritable(this.#socket);
  }

  close(): void {
    this.#socket.destroy();
  }

  #send(kind: FrameKindValue, payload?: Buffer): boolean {
    return writeFrames(this.#socket, kind, payload);
  }
}
