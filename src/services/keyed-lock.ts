/**
 * Mutual exclusion per key (a VM id): `run(key, fn)` waits for every earlier
 * `run` of the same key to settle, then runs `fn`. Different keys never wait
 * for each other. A failed `fn` does not poison the queue.
 */
export class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.#tails.set(key, next);
    try {
      return await next;
    } finally {
      if (this.#tails.get(key) === next) this.#tails.delete(key);
    }
  }

  /** Whether some `run` for the key is queued or running. */
  busy(key: string): boolean {
    return this.#tails.has(key);
  }
}
