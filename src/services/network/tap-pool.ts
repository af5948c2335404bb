import { existsSync } from 'node:fs';

import type { Logger } from 'pino';

import { MAX_TAP_INDEX, tapName } from '../../root-helper/policy.js';
import type { PrivilegedOps } from '../../root-helper/privileged-ops.js';
import { BangerError } from '../../rpc/errors.js';

/**
 * Idle taps kept ready (created by the root helper, owned by the user,
 * attached to the bridge, isolated), so a VM start takes one instead of
 * waiting for the helper. A released tap goes back to the pool while it has
 * room and is deleted otherwise. Names are the bridge's tap pattern with the
 * lowest free index, so a restarted daemon recognises its taps (reconcile).
 */
export interface PoolStatus {
  size: number;
  idle: string[];
  inUse: string[];
}

export class TapPool {
  readonly #ops: PrivilegedOps;
  readonly #bridge: string;
  readonly #uid: number;
  readonly #size: number;
  readonly #log: Logger;
  readonly #idle: string[] = [];
  readonly #inUse = new Set<string>();
  /** Names being created: reserved so two creates never pick one name. */
  readonly #creating = new Set<string>();
  #refilling: Promise<void> | undefined;

  /** Whether a tap still exists on the host (one deleted behind the pool's back is skipped). */
  readonly #exists: (tap: string) => boolean;

  constructor(deps: { ops: PrivilegedOps; bridge: string; uid: number; size: number; log: Logger; exists?: (tap: string) => boolean }) {
    this.#ops = deps.ops;
    this.#exists = deps.exists ?? ((tap) => existsSync(`/sys/class/net/${tap}`));
    this.#bridge = deps.bridge;
    this.#uid = deps.uid;
    this.#size = deps.size;
    this.#log = deps.log;
  }

  get size(): number {
    return this.#size;
  }

  status(): PoolStatus {
    return { size: this.#size, idle: [...this.#idle], inUse: [...this.#inUse].sort() };
  }

  /** Records taps found on the host at daemon start: idle ones join the pool, in-use ones are reserved. */
  adopt(idle: readonly string[], inUse: readonly string[]): void {
    for (const tap of inUse) this.#inUse.add(tap);
    for (const tap of idle) if (!this.#idle.includes(tap) && !this.#inUse.has(tap)) this.#idle.push(tap);
  }

  /** Whether `tap` is one of the pool's (idle or in use). */
  holds(tap: string): boolean {
    return this.#idle.includes(tap) || this.#inUse.has(tap);
  }

  /** Whether the pool wants another idle tap (used by reconcile to adopt or delete a leftover). */
  hasRoom(): boolean {
    return this.#idle.length + this.#creating.size < this.#size;
  }

  /** An idle tap for a VM (created now if the pool is empty); the pool refills in the background. */
  async take(): Promise<string> {
    let tap = this.#idle.shift();
    while (tap !== undefined && !this.#exists(tap)) tap = this.#idle.shift();
    tap ??= await this.#create();
    this.#inUse.add(tap);
    this.refill();
    return tap;
  }

  /** Returns a VM's tap: back to the pool while it has room, deleted otherwise. The caller resets its network first. */
  async give(tap: string): Promise<void> {
    this.#inUse.delete(tap);
    if (this.#idle.includes(tap)) return;
    if (this.hasRoom()) {
      this.#idle.push(tap);
      return;
    }
    await this.#ops.deleteTap(tap);
  }

  /** Deletes every idle tap (after the bridge went away, they are attached to nothing). */
  async discardIdle(): Promise<void> {
    await this.settled();
    for (const tap of this.#idle.splice(0)) {
      await this.#ops.deleteTap(tap).catch((error: unknown) => {
        this.#log.warn({ tap, err_message: error instanceof Error ? error.message : String(error) }, 'could not delete an idle tap');
      });
    }
  }

  /** Forgets a tap that is gone (deleted elsewhere, or failed). */
  forget(tap: string): void {
    this.#inUse.delete(tap);
    const index = this.#idle.indexOf(tap);
    if (index >= 0) this.#idle.splice(index, 1);
  }

  /** Tops the pool up to its size in the background; failures are logged (a start then creates its own tap). */
  refill(): void {
    if (this.#refilling !== undefined || !this.hasRoom()) return;
    this.#refilling = (async () => {
      try {
        while (this.hasRoom()) this.#idle.push(await this.#create());
      } catch (error) {
        this.#log.warn({ err_message: error instanceof Error ? error.message : String(error) }, 'tap pool: could not refill');
      } finally {
        this.#refilling = undefined;
      }
    })();
  }

  /** Waits for a refill in progress (tests, shutdown). */
  async settled(): Promise<void> {
    await this.#refilling;
  }

  async #create(): Promise<string> {
    const name = this.#freeName();
    this.#creating.add(name);
    try {
      await this.#ops.createTap(name, this.#uid);
      return name;
    } finally {
      this.#creating.delete(name);
    }
  }

  #freeName(): string {
    for (let index = 0; index <= MAX_TAP_INDEX; index++) {
      const name = tapName(this.#bridge, index);
      if (!this.#idle.includes(name) && !this.#inUse.has(name) && !this.#creating.has(name)) return name;
    }
    throw new BangerError('ERR_IN_USE', `every tap name of ${this.#bridge} is in use`);
  }
}
