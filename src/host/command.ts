import { spawn } from 'node:child_process';

import { BangerError } from '../rpc/errors.js';

/**
 * Runs host commands (ip, nft, mkfs.ext4, mmdebstrap, ...) to completion with
 * their output's tail in the error. Nothing here is privileged: what needs
 * root goes through PrivilegedOps (src/root-helper/).
 */

export function isRoot(): boolean {
  return process.getuid?.() === 0;
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
