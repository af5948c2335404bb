import type { RpcClient } from '../rpc/client.js';
import { toBangerError } from '../rpc/errors.js';
import type { DaemonEvent, DaemonEventKind } from '../rpc/methods.js';

export interface EventsOptions {
  /** Only these kinds (default: all). */
  kinds?: DaemonEventKind[] | undefined;
  /** Aborting ends the iteration (normally, without an error) and the subscription. */
  signal?: AbortSignal | undefined;
}

/**
 * The daemon's events (daemon.events) as an async iterable: it begins with
 * one `vm.changed` per VM, then follows changes as they happen. The
 * subscription starts with the first `next()` and ends when `signal` aborts
 * or the loop stops (`break`, `return`, a throw); it throws a BangerError when
 * the daemon refuses the subscription or goes away. Events that arrive
 * between two `next()` calls wait in memory, so read promptly.
 */
export async function* subscribeEvents(rpc: RpcClient, options: EventsOptions = {}): AsyncGenerator<DaemonEvent, void, undefined> {
  const { signal } = options;
  if (signal?.aborted === true) return;
  const stop = new AbortController();
  const queue: DaemonEvent[] = [];
  let wake: (() => void) | undefined;
  const onAbort = (): void => {
    stop.abort();
    wake?.();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const state: { ended: boolean; failure: unknown } = { ended: false, failure: undefined };
  const subscription = rpc
    .subscribe(
      (event) => {
        queue.push(event);
        wake?.();
      },
      { signal: stop.signal, ...(options.kinds === undefined ? {} : { kinds: options.kinds }) },
    )
    .catch((error: unknown) => {
      state.failure = error;
    })
    .finally(() => {
      state.ended = true;
      wake?.();
    });
  try {
    for (;;) {
      if (stop.signal.aborted) return;
      const event = queue.shift();
      if (event !== undefined) {
        yield event;
        continue;
      }
      if (state.ended) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
    if (state.failure !== undefined) throw toBangerError(state.failure);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    stop.abort();
    await subscription;
  }
}
