import { spawn } from 'node:child_process';

import { BangerError } from '../rpc/errors.js';

/** A host command that has not finished in this long is killed: one hung tool must not stall the helper for every user. */
const COMMAND_TIMEOUT_MS = 20_000;

/** Runs a command (argument vector, never a shell) and returns its stdout; a failure is ERR_HOST_COMMAND_FAILED with stderr's tail. */
export function capture(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: COMMAND_TIMEOUT_MS,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', (error) => {
      reject(new BangerError('ERR_HOST_TOOL_MISSING', `cannot run ${command}: ${error.message}`, { cause: error, hint: 'run `banger doctor`' }));
    });
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else
        reject(
          new BangerError(
            'ERR_HOST_COMMAND_FAILED',
            `${command} ${args.join(' ')} failed (${signal ?? `exit ${code ?? '?'}`}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
          ),
        );
    });
    if (input !== undefined) {
      // A command that fails before reading its input closes the pipe: its exit status tells why.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(input);
    }
  });
}
