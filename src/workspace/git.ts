import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

import { BangerError } from '../rpc/errors.js';

/**
 * Runs the host's `git` with arguments as argv (never through a shell).
 * Config that would make output unpredictable for a program (pagers, colour,
 * quoted paths, translations) is switched off for every call.
 */

export interface GitResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

const MAX_OUTPUT = 512 * 1024 * 1024;

export function git(
  cwd: string,
  args: readonly string[],
  options: { signal?: AbortSignal | undefined; env?: NodeJS.ProcessEnv; input?: Buffer | undefined } = {},
): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      ['-c', 'core.quotePath=false', '-c', 'color.ui=false', '--no-pager', ...args],
      {
        cwd,
        encoding: 'buffer',
        maxBuffer: MAX_OUTPUT,
        env: { ...process.env, ...options.env, LC_ALL: 'C', GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0' },
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
      (error, stdout, stderr) => {
        if (error !== null && typeof error.code !== 'number') {
          if (options.signal?.aborted === true) reject(options.signal.reason instanceof Error ? options.signal.reason : error);
          else if (!directoryReadable(cwd)) {
            // spawn reports a cwd it cannot enter as an error of the program
            reject(
              new BangerError('ERR_INVALID_ARGUMENT', `cannot read ${cwd}: permission denied`, {
                cause: error,
                hint: 'banger runs as you: the repo must be readable by your user',
              }),
            );
          } else
            reject(
              new BangerError('ERR_HOST_TOOL_MISSING', `cannot run git: ${error.message}`, {
                cause: error,
                hint: 'install git on the host (apt-get install git)',
              }),
            );
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr: stderr.toString() });
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(options.input);
  });
}

function directoryReadable(path: string): boolean {
  try {
    accessSync(path, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs git and returns stdout, or throws ERR_HOST_COMMAND_FAILED with git's message. */
export async function gitOk(cwd: string, args: readonly string[], signal?: AbortSignal, input?: Buffer, env?: NodeJS.ProcessEnv): Promise<Buffer> {
  const result = await git(cwd, args, { signal, input, ...(env === undefined ? {} : { env }) });
  if (result.code !== 0) {
    throw new BangerError(
      'ERR_HOST_COMMAND_FAILED',
      `git ${subcommand(args)} failed in ${cwd}: ${result.stderr.trim().split('\n').at(-1) ?? `exit ${result.code}`}`,
    );
  }
  return result.stdout;
}

/** The git subcommand of an argument list, past `-c key=value` options (for messages). */
function subcommand(args: readonly string[]): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (arg === '-c' || arg === '-C') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return '';
}

/** NUL-separated output (`-z`) split into entries. */
export function splitNul(output: Buffer): string[] {
  const text = output.toString('utf8');
  return text === '' ? [] : text.split('\0').filter((entry) => entry !== '');
}

/** A value from the host's resolved git config (repo, then global, then system), or undefined. */
export async function gitConfigValue(cwd: string, key: string): Promise<string | undefined> {
  const result = await git(cwd, ['config', '--get', key]);
  const value = result.stdout.toString('utf8').trim();
  return result.code === 0 && value !== '' ? value : undefined;
}
