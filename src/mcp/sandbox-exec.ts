import type { BangerClient } from '../sdk/index.js';
import { BangerError } from '../rpc/errors.js';

/** What one command in a sandbox came to, output included. */
export interface CommandOutcome {
  /** The status a shell would report; null when it timed out. */
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  timeoutSeconds: number;
  stdout: string;
  stderr: string;
  /** stdout as bytes (file reads need them undecoded). */
  stdoutBytes: Buffer;
}

export const DEFAULT_TIMEOUT_SECONDS = 120;

/**
 * Runs argv in a sandbox through the SDK and collects its output. A timeout
 * ends the command the way the SDK's abort does (TERM, then the daemon kills
 * it) and is an outcome, not an error, so the agent still sees the output
 * so far; the caller's own cancellation stays an error (ERR_CANCELLED).
 */
export async function runInSandbox(
  client: BangerClient,
  sandbox: string,
  argv: string[],
  options: { timeoutSeconds?: number | undefined; stdin?: string | undefined; signal: AbortSignal; binary?: boolean },
): Promise<CommandOutcome> {
  const timeoutSeconds = options.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  const timer = new AbortController();
  const timeout = setTimeout(() => {
    timer.abort(new BangerError('ERR_CANCELLED', `timed out after ${timeoutSeconds} s`));
  }, timeoutSeconds * 1000);
  const signal = AbortSignal.any([options.signal, timer.signal]);
  const collected = (): Pick<CommandOutcome, 'stdout' | 'stderr' | 'stdoutBytes'> => {
    const bytes = Buffer.concat(stdout);
    return { stdoutBytes: bytes, stdout: options.binary === true ? '' : bytes.toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') };
  };
  try {
    const command = client.vm.exec(sandbox, argv, {
      stdin: options.stdin ?? '',
      signal,
      onStdout: (chunk) => stdout.push(chunk),
      onStderr: (chunk) => stderr.push(chunk),
    });
    const result = await command.result;
    return { exitCode: result.exitCode, signal: result.signal, timedOut: false, timeoutSeconds, ...collected() };
  } catch (error) {
    if (timer.signal.aborted && !options.signal.aborted) return { exitCode: null, signal: null, timedOut: true, timeoutSeconds, ...collected() };
    throw error;
  } finally {
    clearTimeout(timeout);
  }
}
