import { spawn } from 'node:child_process';

import { BangerError } from '../rpc/errors.js';

/**
 * The host operations that need root, in one place: building an image root
 * with mmdebstrap (chroot, device nodes, file ownership), and later bridge,
 * tap and nftables work. Today the daemon performs them itself and so must
 * run as root for them; the root helper will take this module's place.
 */

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

export function requireRoot(what: string): void {
  if (!isRoot()) {
    throw new BangerError('ERR_NEEDS_ROOT', `${what} needs root privileges`, {
      hint: 'run bangerd as root for now (sudo banger daemon start); a privileged helper will lift this',
    });
  }
}

export interface RunOptions {
  signal?: AbortSignal | undefined;
  /** Called with each line the command writes to stdout or stderr. */
  onLine?: ((line: string) => void) | undefined;
  /** Exit statuses that mean success (default: only 0). */
  okCodes?: readonly number[] | undefined;
}

/** Runs a command to completion; a non-zero exit is ERR_HOST_COMMAND_FAILED carrying the output's tail. */
export function runCommand(command: string, args: readonly string[], options: RunOptions = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(options.signal === undefined ? {} : { signal: options.signal }) });
    const tail: string[] = [];
    let pending = '';
    const take = (chunk: Buffer): void => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        options.onLine?.(line);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', (error) => {
      if (options.signal?.aborted === true) reject(abortReason(options.signal));
      else
        reject(
          new BangerError('ERR_HOST_TOOL_MISSING', `cannot run ${command}: ${error.message}`, {
            cause: error,
            hint: 'run `banger doctor` to see which host tools are missing',
          }),
        );
    });
    child.on('close', (code, signal) => {
      if (code !== null && (options.okCodes ?? [0]).includes(code)) resolve();
      else if (options.signal?.aborted === true) reject(abortReason(options.signal));
      else {
        reject(
          new BangerError('ERR_HOST_COMMAND_FAILED', `${command} failed (${signal ?? `exit ${code ?? '?'}`}): ${tail.slice(-5).join(' | ')}`, {
            hint: 'see `banger daemon logs` for the full output',
          }),
        );
      }
    });
  });
}

/** The reason a signal was aborted with, as an Error (BangerError for our own cancels). */
export function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new BangerError('ERR_CANCELLED', 'cancelled');
}
