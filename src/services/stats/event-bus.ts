import type { DaemonEvent, DaemonEventKind } from '../../rpc/methods.js';

/** A daemon event as published: what a subscription sends, before its token is added. */
export type BusEvent = DaemonEvent extends infer E ? (E extends DaemonEvent ? Omit<E, 'token'> : never) : never;

export type BusListener = (event: BusEvent) => void;

/**
 * The daemon's in-process event bus: VM changes and deletions (published from
 * the VM store's writes, see VmsRepo's observer) and stats samples. Delivery
 * is synchronous and in publish order; a listener that throws is reported to
 * `onListenerError` and never stops the publisher (a VM transition must not
 * fail because a subscriber did) or the other listeners.
 */
export class DaemonEventBus {
  readonly #listeners = new Set<{ listener: BusListener; kinds: ReadonlySet<DaemonEventKind> | undefined }>();
  readonly #onListenerError: (error: unknown, event: BusEvent) => void;

  constructor(onListenerError: (error: unknown, event: BusEvent) => void = () => undefined) {
    this.#onListenerError = onListenerError;
  }

  /** Calls `listener` for each event of `kinds` (every kind when left out) until the returned function is called. */
  subscribe(listener: BusListener, kinds?: readonly DaemonEventKind[]): () => void {
    const entry = { listener, kinds: kinds === undefined ? undefined : new Set(kinds) };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  publish(event: BusEvent): void {
    // A copy: a listener may unsubscribe (itself or another) while the event is delivered.
    for (const entry of [...this.#listeners]) {
      if (entry.kinds !== undefined && !entry.kinds.has(event.kind)) continue;
      if (!this.#listeners.has(entry)) continue;
      try {
        entry.listener(event);
      } catch (error) {
        this.#onListenerError(error, event);
      }
    }
  }

  /** Listeners subscribed now (tests check that subscriptions do not leak). */
  get listenerCount(): number {
    return this.#listeners.size;
  }
}
