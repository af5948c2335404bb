import { execFile } from 'node:child_process';

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
          else
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

/** Runs git and returns stdout, or throws ERR_HOST_COMMAND_FAILED with git's message. */
export async function gitOk(cwd: string, args: readonly string[], signal?: AbortSignal, input?: Buffer): Promise<Buffer> {
  const result = await git(cwd, args, { signal, input });
  if (result.code !== 0) {
    throw new BangerError(
      'ERR_HOST_COMMAND_FAILED',
      `git ${args[0] ?? ''} failed in ${cwd}: ${result.stderr.trim().split('\n').at(-1) ?? `exit ${result.code}`}`,
    );
  }
  return result.stdout;
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
