import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

import type { Client, ClientChannel, PseudoTtyOptions } from 'ssh2';

import { BangerError } from '../rpc/errors.js';
import type { ForwardedSignal } from './shell.js';

/**
 * One open, host-key-pinned SSH connection to a guest (ssh2). Every guest
 * command runs as a channel of it, so no command pays for a key exchange
 * (0.5-2 s under TCG).
 *
 * Two things sshd does not do for root sessions are done here instead:
 * - Signals: sshd refuses "signal" requests for root logins (it runs them
 *   without privilege separation), so every command first reports its pid
 *   (`banger-ready <pid>`; the shell is a session leader and then execs the
 *   command, keeping that pid) and a signal is `kill -s SIG -- -<pid>` on
 *   another channel: the whole process group gets it.
 * - Start-up latency: opening a channel makes sshd fork and start the login
 *   shell (~100 ms under TCG). A couple of channels are kept open in advance,
 *   their shells waiting for a script on stdin (read until a random end line);
 *   a command takes one and runs at once (~30 ms). Terminal sessions are
 *   opened directly.
 *
 * `closed` (an AbortSignal) fires when the connection ends, so work running
 * on it stops waiting the moment the guest goes away or banger closes it.
 */

/** How a guest command ended: an exit code, or the signal that killed it. */
export interface GuestExit {
  code: number | null;
  signal: string | null;
}

/** The status a shell would report: the code, or 128 + the signal's number. */
export function exitStatus(exit: GuestExit): number {
  if (exit.code !== null) return exit.code;
  const number = exit.signal === null ? undefined : (constants.signals as Record<string, number | undefined>)[`SIG${exit.signal}`];
  return 128 + (number ?? 127);
}

export interface GuestProcess {
  /** The command's pid in the guest (also its process group). */
  pid: number;
  stdin: Writable;
  stdout: Readable;
  stderr: Readable;
  /** Delivers a signal to the command's process group. */
  signal(name: ForwardedSignal): Promise<void>;
  resize(cols: number, rows: number): void;
  /** Resolves when the command has ended and its output was read to the end. */
  exited: Promise<GuestExit>;
  /** Closes the channel. */
  close(): void;
  /** Kills the command's process group, then closes the channel; never throws. */
  kill(): void;
}

export interface SpawnOptions {
  /** Allocate a pseudo-terminal (stderr is then merged into stdout by the guest's tty). */
  pty?: { cols: number; rows: number; term: string } | undefined;
}

export interface RunResult extends GuestExit {
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's stdin, then EOF; a stream is piped. */
  stdin?: Buffer | string | Readable | undefined;
  /** Aborting kills the command and rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

const READY = /^banger-ready (\d+)\r?\n/;
/** Channels kept waiting for a script: two, so back-to-back commands rarely wait for one to open. */
const SPARE_CHANNELS = 2;
const MAX_PRELUDE_BYTES = 256;

interface Ready {
  channel: ClientChannel;
  pid: number;
  exited: Promise<GuestExit>;
}

export class GuestConnection {
  readonly #client: Client;
  readonly #closed = new AbortController();
  /** End line of scripts sent to waiting channels; random so no script line can match it. */
  readonly #endLine = `banger-end-${randomBytes(8).toString('hex')}`;
  readonly #spares: Promise<Ready | undefined>[] = [];

  constructor(
    client: Client,
    readonly host: string,
  ) {
    this.#client = client;
    const onEnd = (): void => {
      this.#closed.abort(new BangerError('ERR_GUEST_SSH', `the SSH connection to ${host} closed`));
    };
    client.on('close', onEnd);
    client.on('end', onEnd);
    // Errors after the handshake end the connection; 'close' follows.
    client.on('error', onEnd);
    this.#refill();
  }

  /** Aborted when the connection has ended, for whatever reason. */
  get closed(): AbortSignal {
    return this.#closed.signal;
  }

  get isOpen(): boolean {
    return !this.#closed.signal.aborted;
  }

  close(): void {
    this.#closed.abort(new BangerError('ERR_GUEST_SSH', `the SSH connection to ${this.host} was closed by banger`));
    this.#client.end();
  }

  /**
   * Starts a shell script (any number of lines; POSIX sh) on its own channel.
   * The script should `exec` the command it runs so that signals and the
   * exit status are the command's.
   */
  async spawn(script: string, options: SpawnOptions = {}): Promise<GuestProcess> {
    this.#throwIfClosed();
    const waiting = options.pty === undefined ? this.#spares.shift() : undefined;
    const spare = await waiting;
    const ready =
      spare !== undefined && !channelClosed(spare.channel)
        ? spare
        : await this.#open(`printf 'banger-ready %s\\n' "$$"${options.pty === undefined ? ' >&2' : ''}\n${script}`, options.pty);
    if (ready === spare) ready.channel.write(`${script}\n${this.#endLine}\n`);
    const child = this.#process(ready);
    // Refilled once the command is done: on a one-vCPU guest under TCG, a shell starting
    // next to the command would slow the command down.
    void child.exited
      .catch(() => undefined)
      .finally(() => {
        this.#refill();
      });
    return child;
  }

  #refill(): void {
    while (this.isOpen && this.#spares.length < SPARE_CHANNELS) this.#spares.push(this.#openWaiting());
  }

  /** Runs a script to its end and collects its output. */
  async run(script: string, options: RunOptions = {}): Promise<RunResult> {
    options.signal?.throwIfAborted();
    const child = await this.spawn(script);
    const onAbort = (): void => {
      child.kill();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const stdout: Buffer[] = [];
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdin.on('error', () => undefined);
      const input = options.stdin;
      let inputError: Error | undefined;
      if (input === undefined || typeof input === 'string' || Buffer.isBuffer(input)) child.stdin.end(input ?? '');
      else {
        // A failing producer must not leave the command waiting for input forever.
        input.once('error', (error: Error) => {
          inputError = error;
          onAbort();
        });
        input.pipe(child.stdin);
      }
      const exit = await child.exited;
      options.signal?.throwIfAborted();
      if (inputError !== undefined) throw inputError;
      return { ...exit, stdout: Buffer.concat(stdout), stderr };
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  #throwIfClosed(): void {
    if (this.isOpen) return;
    const reason: unknown = this.#closed.signal.reason;
    throw reason instanceof Error ? reason : new BangerError('ERR_GUEST_SSH', `the SSH connection to ${this.host} is closed`);
  }

  /** A channel whose shell waits for a script (see the class comment); undefined if it could not open. */
  #openWaiting(): Promise<Ready | undefined> {
    if (!this.isOpen) return Promise.resolve(undefined);
    const script = [
      `printf 'banger-ready %s\\n' "$$" >&2`,
      `banger_script=`,
      `while IFS= read -r banger_line; do [ "$banger_line" = '${this.#endLine}' ] && break; banger_script="$banger_script$banger_line`,
      `"; done`,
      `[ "$banger_line" = '${this.#endLine}' ] || exit 0`,
      `unset banger_line`,
      `eval "$banger_script"`,
    ].join('\n');
    return this.#open(script, undefined).catch(() => undefined);
  }

  /** Opens a channel running `script`, and waits for its `banger-ready <pid>` line. */
  #open(script: string, pty: SpawnOptions['pty']): Promise<Ready> {
    return new Promise((resolve, reject) => {
      const execOptions = pty === undefined ? {} : { pty: ptyOf(pty) };
      this.#client.exec(script, execOptions, (error: Error | undefined, channel: ClientChannel) => {
        if (error !== undefined) {
          reject(new BangerError('ERR_GUEST_SSH', `cannot run a command in the guest: ${error.message}`, { cause: error }));
          return;
        }
        // Tracked from the start: a fast command's exit can arrive in the same packet burst as its pid.
        const exited = exitOf(channel, this.closed);
        exited.catch(() => undefined);
        const stream: Readable = pty === undefined ? channel.stderr : channel;
        let seen = Buffer.alloc(0);
        const onData = (chunk: Buffer): void => {
          seen = Buffer.concat([seen, chunk]);
          const match = READY.exec(seen.toString('latin1'));
          if (match === null) {
            if (seen.length > MAX_PRELUDE_BYTES || seen.includes(0x0a))
              fail(new BangerError('ERR_GUEST_SSH', `unexpected output from the guest shell: ${seen.toString().slice(0, 120)}`));
            return;
          }
          cleanup();
          stream.pause();
          const rest = seen.subarray(match[0].length);
          if (rest.length > 0) stream.unshift(rest);
          resolve({ channel, pid: Number(match[1]), exited });
        };
        const onClose = (): void => {
          fail(new BangerError('ERR_GUEST_SSH', 'the guest shell closed before it started the command'));
        };
        const cleanup = (): void => {
          stream.off('data', onData);
          channel.off('close', onClose);
        };
        const fail = (failure: Error): void => {
          cleanup();
          channel.close();
          reject(failure);
        };
        stream.on('data', onData);
        channel.on('close', onClose);
      });
    });
  }

  #process(ready: Ready): GuestProcess {
    const { channel, pid, exited } = ready;
    const signal = async (name: ForwardedSignal): Promise<void> => {
      const result = await this.run(`kill -s ${name} -- -${pid} 2>/dev/null || kill -s ${name} ${pid} 2>/dev/null; exit 0`);
      if (result.code !== 0) throw new BangerError('ERR_GUEST_SSH', `could not signal the guest command: ${result.stderr.trim()}`);
    };
    return {
      pid,
      stdin: channel,
      stdout: channel,
      stderr: channel.stderr,
      signal,
      resize: (cols, rows) => {
        channel.setWindow(rows, cols, 0, 0);
      },
      exited,
      close: () => {
        channel.close();
      },
      kill: () => {
        void signal('KILL')
          .catch(() => undefined)
          .finally(() => {
            channel.close();
          });
      },
    };
  }
}

function channelClosed(channel: ClientChannel): boolean {
  return channel.destroyed || !channel.writable;
}

function ptyOf(pty: { cols: number; rows: number; term: string }): PseudoTtyOptions {
  return { cols: pty.cols, rows: pty.rows, height: 0, width: 0, term: pty.term };
}

function exitOf(channel: ClientChannel, connectionClosed: AbortSignal): Promise<GuestExit> {
  let exit: GuestExit | undefined;
  channel.on('exit', (code: number | null, signal?: string) => {
    // ssh2 reports signals as SIGINT etc.; banger uses the bare names (INT), like sshd and kill(1).
    exit = { code, signal: signal === undefined ? null : signal.replace(/^SIG/, '') };
  });
  return new Promise<GuestExit>((resolve, reject) => {
    const onConnectionClosed = (): void => {
      if (exit !== undefined) return;
      reject(connectionClosed.reason instanceof Error ? connectionClosed.reason : new BangerError('ERR_GUEST_SSH', 'the SSH connection closed'));
    };
    connectionClosed.addEventListener('abort', onConnectionClosed, { once: true });
    channel.on('close', () => {
      connectionClosed.removeEventListener('abort', onConnectionClosed);
      if (exit !== undefined) resolve(exit);
      else if (connectionClosed.aborted) onConnectionClosed();
      // sshd always reports an exit status or signal; a channel closed without one was cut off.
      else reject(new BangerError('ERR_GUEST_SSH', 'the guest command ended without an exit status (its channel was closed)'));
    });
  });
}
