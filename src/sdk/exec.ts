import { PassThrough, Writable } from 'node:stream';

import type { StreamClient } from '../cli/stream-client.js';
import { FORWARDED_SIGNALS, type ForwardedSignal } from '../guest/shell.js';
import type { RpcClient } from '../rpc/client.js';
import { BangerError, toBangerError } from '../rpc/errors.js';
import type { VmExecResult } from '../rpc/methods.js';
import type { RequestOptions } from './request-options.js';

/** Opens a stream connection whose stdout/stderr frames go to these sinks (see BangerClient). */
export type StreamOpener = (sinks: { stdout: Writable; stderr: Writable; onNotice: (text: string) => void }) => Promise<StreamClient>;

/** A signal the guest command can be sent: `TERM` or `SIGTERM` (and HUP, INT, QUIT, KILL, USR1, USR2, PIPE, ALRM). */
export type ExecSignal = ForwardedSignal | `SIG${ForwardedSignal}`;

/**
 * What the command's stdin reads: bytes or text (sent, then ended; `''` for
 * none), or an async iterable such as a Node Readable (streamed with
 * backpressure, ended when it ends).
 */
export type ExecStdin = string | Uint8Array | AsyncIterable<string | Uint8Array>;

export interface ExecOptions extends RequestOptions {
  /** Left out (like child_process.spawn's pipe): the command's stdin stays open for `write()` until `end()`. */
  stdin?: ExecStdin | undefined;
  /** Receives stdout chunks as they arrive; the `stdout` iterable then stays empty. */
  onStdout?: ((chunk: Buffer) => void) | undefined;
  /** Receives stderr chunks as they arrive; the `stderr` iterable then stays empty. */
  onStderr?: ((chunk: Buffer) => void) | undefined;
  /** Notes from banger about the run (e.g. a stale workspace). */
  onNotice?: ((text: string) => void) | undefined;
  /** A terminal in the guest (stdin/stdout are a tty there; stderr merges into stdout). `true`: 80x24, TERM=xterm. */
  tty?: boolean | { cols?: number; rows?: number; term?: string } | undefined;
  /** Re-prepare a stale workspace before running. */
  autoPrepare?: boolean | undefined;
  /**
   * How long an abort waits, after sending TERM, for the command to exit
   * before cancelling the request (the daemon then KILLs it). Default 2000 ms.
   */
  abortGraceMs?: number | undefined;
}

/** A command running in a VM (`client.vm.exec`). */
export interface ExecProcess {
  /** The command's stdout, chunk by chunk; ends when the command's output does. Unread output holds the command back. */
  readonly stdout: AsyncIterable<Buffer>;
  readonly stderr: AsyncIterable<Buffer>;
  /** Sends bytes to the command's stdin (only without the stdin option); resolves once the connection can take more. */
  write(data: string | Uint8Array): Promise<void>;
  /** Ends the command's stdin (it reads EOF). */
  end(): void;
  /** Sends a signal to the command's process group in the guest (default TERM). */
  kill(signal?: ExecSignal): void;
  /** Resizes the command's terminal (tty only). */
  resize(cols: number, rows: number): void;
  /** The exit status once the command has finished, else null. */
  readonly exitCode: number | null;
  /**
   * Settles once the command has exited and all of its output has arrived:
   * `exitCode` is the status a shell would report (128 + n for a signal).
   * Rejects with a BangerError (ERR_CANCELLED after an abort).
   */
  readonly result: Promise<VmExecResult>;
}

const DEFAULT_ABORT_GRACE_MS = 2000;
/** Output buffered per stream before backpressure reaches the guest: generous, so short outputs never stall an unread iterable. */
const OUTPUT_BUFFER_BYTES = 1024 * 1024;

/**
 * Runs `command` in VM `ref` over vm.exec and a stream connection, the way
 * `banger vm exec` does (src/cli/guest-exec.ts). Returns at once; the stream
 * opens and the request starts in the background.
 */
export function startExec(rpc: RpcClient, openStream: StreamOpener, ref: string, command: readonly string[], options: ExecOptions = {}): ExecProcess {
  return new GuestCommand(rpc, openStream, ref, command, options);
}

class GuestCommand implements ExecProcess {
  readonly stdout: PassThrough;
  readonly stderr: PassThrough;
  readonly result: Promise<VmExecResult>;
  #exitCode: number | null = null;
  readonly #stream: Promise<StreamClient>;
  readonly #piped: boolean;
  /** Stdin frames in order: each write waits for the one before (and for room on the socket). */
  #stdinChain: Promise<void> = Promise.resolve();
  #stdinEnded = false;
  #settled = false;
  /** Cancels the vm.exec request (the daemon then kills the command). */
  readonly #cancel = new AbortController();
  /** Set when a sink callback or the stdin source failed: the run is cancelled and fails with this. */
  #failure: BangerError | undefined;

  constructor(rpc: RpcClient, openStream: StreamOpener, ref: string, command: readonly string[], options: ExecOptions) {
    this.stdout = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
    this.stderr = new PassThrough({ highWaterMark: OUTPUT_BUFFER_BYTES });
    this.#piped = options.stdin === undefined;
    this.#stream = openStream({
      stdout: this.#sink(options.onStdout, this.stdout),
      stderr: this.#sink(options.onStderr, this.stderr),
      onNotice: options.onNotice ?? (() => undefined),
    });
    this.#stream.catch(noop); // a failure to open surfaces through `result`
    this.result = this.#run(rpc, ref, command, options);
    // A caller that only reads the output and never awaits `result` must not crash the process on a failure.
    this.result.catch(() => undefined);
    if (options.stdin !== undefined) void this.#feed(options.stdin);
  }

  get exitCode(): number | null {
    return this.#exitCode;
  }

  write(data: string | Uint8Array): Promise<void> {
    if (!this.#piped) return Promise.reject(new BangerError('ERR_USAGE', 'write() is for a command started without the stdin option'));
    return this.#write(data);
  }

  end(): void {
    if (!this.#piped) throw new BangerError('ERR_USAGE', 'end() is for a command started without the stdin option');
    this.#end();
  }

  kill(signal: ExecSignal = 'TERM'): void {
    const name = signal.replace(/^SIG/, '');
    if (!(FORWARDED_SIGNALS as readonly string[]).includes(name))
      throw new BangerError('ERR_INVALID_ARGUMENT', `cannot send signal ${signal} to a guest command`, { hint: `one of ${FORWARDED_SIGNALS.join(', ')}` });
    void this.#stream.then((stream) => {
      stream.signal(name);
    }, noop);
  }

  resize(cols: number, rows: number): void {
    void this.#stream.then((stream) => {
      stream.resize(cols, rows);
    }, noop);
  }

  async #run(rpc: RpcClient, ref: string, command: readonly string[], options: ExecOptions): Promise<VmExecResult> {
    const { signal } = options;
    let graceTimer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      // Like the CLI's first Ctrl-C, then its second: TERM to the command, then cancel the request.
      this.kill('TERM');
      graceTimer = setTimeout(() => {
        this.#cancel.abort();
      }, options.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS);
    };
    try {
      if (aborted(signal)) throw cancelled();
      signal?.addEventListener('abort', onAbort, { once: true });
      const stream = await this.#stream;
      const result = await rpc.call(
        'vmExec',
        {
          ref,
          command: [...command],
          streamToken: stream.token,
          ...(options.tty === undefined || options.tty === false ? {} : { tty: terminalOf(options.tty) }),
          ...(options.autoPrepare === true ? { autoPrepare: true } : {}),
        },
        { signal: this.#cancel.signal, onProgress: options.onProgress },
      );
      await stream.done;
      if (this.#failure !== undefined) throw this.#failure;
      if (aborted(signal)) throw cancelled();
      this.#exitCode = result.exitCode;
      return result;
    } catch (error) {
      if (this.#failure !== undefined) throw this.#failure;
      if (aborted(signal)) throw cancelled();
      throw toBangerError(error);
    } finally {
      this.#settled = true;
      clearTimeout(graceTimer);
      signal?.removeEventListener('abort', onAbort);
      void this.#stream.then((stream) => {
        stream.close();
      }, noop);
      this.stdout.end();
      this.stderr.end();
    }
  }

  /** A sink for one output stream: the caller's callback, or the iterable. */
  #sink(callback: ((chunk: Buffer) => void) | undefined, iterable: PassThrough): Writable {
    if (callback === undefined) return iterable;
    return new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        try {
          callback(chunk);
        } catch (error) {
          this.#fail(toBangerError(error));
        }
        done();
      },
    });
  }

  /** Streams the stdin option into the command, then ends its stdin. */
  async #feed(source: ExecStdin): Promise<void> {
    try {
      if (typeof source === 'string' || source instanceof Uint8Array) {
        if (source.length > 0) await this.#write(source);
      } else {
        for await (const chunk of source) {
          if (this.#settled) return;
          await this.#write(chunk);
        }
      }
    } catch (error) {
      this.#fail(new BangerError('ERR_INVALID_ARGUMENT', `reading the command's stdin failed: ${toBangerError(error).message}`, { cause: error }));
    }
    this.#end();
  }

  #write(data: string | Uint8Array): Promise<void> {
    if (this.#stdinEnded) return Promise.reject(new BangerError('ERR_USAGE', "the command's stdin is already ended"));
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const written = this.#stdinChain.then(async () => {
      const stream = await this.#stream;
      if (!stream.stdin(bytes)) await stream.drained();
    });
    this.#stdinChain = written.catch(noop);
    return written;
  }

  #end(): void {
    if (this.#stdinEnded) return;
    this.#stdinEnded = true;
    this.#stdinChain = this.#stdinChain
      .then(async () => {
        (await this.#stream).endStdin();
      })
      .catch(noop);
  }

  #fail(error: BangerError): void {
    if (this.#failure !== undefined || this.#settled) return;
    this.#failure = error;
    this.#cancel.abort();
  }
}

function terminalOf(tty: true | { cols?: number; rows?: number; term?: string }): { cols: number; rows: number; term: string } {
  const size = tty === true ? {} : tty;
  return { cols: size.cols ?? 80, rows: size.rows ?? 24, term: size.term ?? 'xterm' };
}

/** A function, not `signal?.aborted`, so the compiler does not assume it stays what it was at the first check. */
function aborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function cancelled(): BangerError {
  return new BangerError('ERR_CANCELLED', 'the command was cancelled');
}

function noop(): undefined {
  return undefined;
}
