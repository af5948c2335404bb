import type { CallOptions } from '../rpc/client.js';
import type { ProgressEvent } from '../rpc/methods.js';

/**
 * What every SDK call takes besides its params: an AbortSignal (aborting
 * rejects the call with ERR_CANCELLED and cancels the work in the daemon) and,
 * for the methods that report it, a progress listener.
 */
export interface SignalOptions {
  signal?: AbortSignal | undefined;
}

/** For the methods that report progress (the daemon refuses a progress token elsewhere). */
export interface RequestOptions extends SignalOptions {
  onProgress?: ((event: ProgressEvent) => void) | undefined;
}

/** Only the signal of a call's options: for methods that report no progress. */
export function signalOnly(options: SignalOptions): CallOptions {
  return { signal: options.signal };
}

/** A call's options object minus the request options: what goes on the wire as params. */
export type ParamsPart<T> = Omit<T, keyof RequestOptions>;

/**
 * Splits an options object that mixes a method's params with RequestOptions
 * into the two. The daemon refuses params it does not know, so `signal` and
 * `onProgress` must never travel.
 */
export function splitOptions<T extends RequestOptions>(options: T): [ParamsPart<T>, CallOptions] {
  const { signal, onProgress, ...params } = options;
  return [params, { signal, onProgress }];
}
