import type { GuestConnection } from '../../guest/guest-connection.js';
import { BangerError } from '../../rpc/errors.js';

/** What a probe needs of a guest connection (a fake stands in for it in unit tests). */
export type ProbeGuest = Pick<GuestConnection, 'spawn'>;

/**
 * Runs a small read-only script in the guest over its open connection and
 * returns its stdout as text. Guest output is untrusted: past `maxBytes` the
 * script is killed and the probe fails rather than buffer whatever a guest
 * cares to print; aborting `signal` (a timeout, a cancelled request) kills it
 * too. stderr is ignored beyond a short tail for the error message.
 */
export async function runProbe(guest: ProbeGuest, script: string, options: { maxBytes: number; signal: AbortSignal; what: string }): Promise<string> {
  if (options.signal.aborted) throw abortReason(options.signal.reason, options.what);
  const child = await guest.spawn(script);
  const chunks: Buffer[] = [];
  let size = 0;
  let stderr = '';
  let failure: Error | undefined;
  const stop = (reason: unknown): void => {
    failure ??= reason instanceof Error ? reason : new Error(String(reason));
    child.kill();
  };
  const onAbort = (): void => {
    stop(abortReason(options.signal.reason, options.what));
  };
  options.signal.addEventListener('abort', onAbort, { once: true });
  try {
    child.stdin.on('error', () => undefined);
    child.stdin.end();
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > options.maxBytes) {
        stop(new BangerError('ERR_GUEST_COMMAND_FAILED', `the guest printed more than ${options.maxBytes} bytes for ${options.what}`));
        return;
      }
      chunks.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 1024) stderr += chunk.toString('utf8');
    });
    const exit = await child.exited;
    if (failure !== undefined) throw failure;
    if (exit.code !== 0) {
      const why = exit.code === null ? `signal ${exit.signal ?? '?'}` : `status ${exit.code}`;
      throw new BangerError('ERR_GUEST_COMMAND_FAILED', `${options.what} failed in the guest (${why}): ${stderr.trim().slice(0, 200)}`);
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (error) {
    throw failure ?? error;
  } finally {
    options.signal.removeEventListener('abort', onAbort);
  }
}

/** A timeout says what did not answer; other reasons (a cancelled request, shutdown) pass through. */
function abortReason(reason: unknown, what: string): Error {
  if (reason instanceof DOMException && reason.name === 'TimeoutError') {
    return new BangerError('ERR_GUEST_COMMAND_FAILED', `the guest did not answer in time (${what})`, {
      hint: 'the guest may be overloaded; try again',
    });
  }
  return reason instanceof Error ? reason : new Error(String(reason));
}
