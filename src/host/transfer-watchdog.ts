import { BangerError } from '../rpc/errors.js';
import { abortReason } from './command.js';

/**
 * One deadline at a time over an HTTP transfer, combined with the caller's
 * signal: armed for the headers, then for the body, where every chunk
 * restarts it. When it expires its own signal aborts with the timeout error,
 * which stops fetch and the pipeline alike. Shared by Debian downloads and
 * the OCI registry client.
 */
export class TransferWatchdog {
  readonly #caller: AbortSignal | undefined;
  readonly #own = new AbortController();
  readonly #failed: { verb: string; hint: string };
  readonly signal: AbortSignal;
  #timer: NodeJS.Timeout | undefined;

  /** `failed` words a transfer that failed by itself: "cannot <verb> <url>: …", with `hint`. */
  constructor(caller: AbortSignal | undefined, failed: { verb: string; hint: string }) {
    this.#caller = caller;
    this.#failed = failed;
    this.signal = caller === undefined ? this.#own.signal : AbortSignal.any([caller, this.#own.signal]);
  }

  arm(ms: number, error: () => BangerError): void {
    this.disarm();
    this.#timer = setTimeout(() => {
      this.#own.abort(error());
    }, ms);
  }

  /** Restarts the current deadline (more bytes arrived). */
  touch(): void {
    this.#timer?.refresh();
  }

  disarm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** What a failed transfer reports: the caller's cancel first, then an expired deadline, else the failure itself. */
  failure(url: string, error: unknown): Error {
    if (this.#caller?.aborted === true) return abortReason(this.#caller);
    if (this.#own.signal.aborted) return abortReason(this.#own.signal);
    if (error instanceof BangerError) return error;
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    return new BangerError('ERR_DOWNLOAD_FAILED', `cannot ${this.#failed.verb} ${url}: ${error instanceof Error ? error.message : String(error)}${cause}`, {
      cause: error,
      hint: this.#failed.hint,
    });
  }
}
