import { abortReason } from '../host/command.js';
import type { OpContext } from './op-context.js';

/** One caller waiting on shared work (an object per call, so one ctx may wait twice). */
interface Waiter {
  ctx: OpContext;
}

interface Running<T> {
  controller: AbortController;
  waiters: Set<Waiter>;
  outcome: Promise<T>;
}

/**
 * Work that several operations may want at once, one run per key (a pull of
 * one kernel or image name): the first caller starts it, later callers join
 * it. Contract:
 * - The work runs under its own signal, aborted only once every caller
 *   waiting on it has cancelled: one caller's Ctrl-C neither fails the
 *   others nor stops work they still want.
 * - Each caller's promise settles with the work's outcome, or rejects with
 *   its own cancel reason: at once while others still wait (the work goes on
 *   for them); the last one to cancel rejects once the aborted work has
 *   settled, so, as for a pull nobody joined, its answer comes after the
 *   work's own cleanup (a cancelled pull leaves nothing behind).
 * - Progress the work reports reaches every caller still waiting; a joiner
 *   first gets a 'wait' line. The work's log lines carry the op id of the
 *   caller that started it.
 * - Once every caller has cancelled, the key is free at once: a new caller
 *   starts fresh work rather than joining work that is being torn down.
 */
export class SharedWork<T> {
  readonly #running = new Map<string, Running<T>>();

  /**
   * Joins the work running for `key`, or starts `work` for it. `waitDetail`
   * is the 'wait' progress line a joiner gets.
   */
  run(key: string, ctx: OpContext, work: (shared: OpContext) => Promise<T>, waitDetail: string): Promise<T> {
    if (ctx.signal.aborted) return Promise.reject(abortReason(ctx.signal));
    let running = this.#running.get(key);
    if (running === undefined) {
      running = this.#start(key, ctx, work);
    } else {
      ctx.progress('wait', waitDetail);
    }
    return this.#wait(key, running, ctx);
  }

  /** Whether work for `key` is running with someone waiting on it. */
  busy(key: string): boolean {
    return this.#running.has(key);
  }

  #start(key: string, ctx: OpContext, work: (shared: OpContext) => Promise<T>): Running<T> {
    const controller = new AbortController();
    const waiters = new Set<Waiter>();
    const shared: OpContext = {
      opId: ctx.opId,
      log: ctx.log,
      signal: controller.signal,
      progress: (stage, detail, counts) => {
        for (const waiter of waiters) waiter.ctx.progress(stage, detail, counts);
      },
    };
    // Deferred a tick so a synchronous throw in `work` is a rejection like any other.
    const outcome = Promise.resolve().then(() => work(shared));
    const running: Running<T> = { controller, waiters, outcome };
    this.#running.set(key, running);
    const done = (): void => {
      this.#release(key, running);
    };
    outcome.then(done, done);
    return running;
  }

  #wait(key: string, running: Running<T>, ctx: OpContext): Promise<T> {
    const waiter: Waiter = { ctx };
    running.waiters.add(waiter);
    return new Promise<T>((resolve, reject) => {
      /** Set once this caller has left, by cancel or by the outcome: whichever comes first answers it. */
      let left = false;
      const leave = (): boolean => {
        if (left) return false;
        left = true;
        ctx.signal.removeEventListener('abort', onAbort);
        running.waiters.delete(waiter);
        return true;
      };
      const onAbort = (): void => {
        if (!leave()) return;
        const reason = abortReason(ctx.signal);
        if (running.waiters.size > 0) {
          reject(reason);
          return;
        }
        this.#release(key, running);
        running.controller.abort(reason);
        const afterTeardown = (): void => {
          reject(reason);
        };
        running.outcome.then(afterTeardown, afterTeardown);
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      running.outcome.then(
        (value) => {
          if (leave()) resolve(value);
        },
        (error: unknown) => {
          if (leave()) reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  #release(key: string, running: Running<T>): void {
    if (this.#running.get(key) === running) this.#running.delete(key);
  }
}
