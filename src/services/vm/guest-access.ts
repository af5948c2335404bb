import { readFileSync } from 'node:fs';

import type { Client } from 'ssh2';

import { GuestConnection } from '../../guest/guest-connection.js';
import { connectGuest, waitForSsh } from '../../guest/ssh-client.js';
import type { BangerError } from '../../rpc/errors.js';

/**
 * The daemon's open connection to each running VM (see GuestConnection):
 * adopted from the readiness probe when a VM boots, reopened on demand (after
 * a daemon restart, or if it dropped), closed when the VM stops or is
 * deleted. Everything that talks to a guest (exec, workspaces, stop) goes
 * through here, so a VM never has more than one SSH connection from banger.
 */
export class GuestAccess {
  readonly #deps: { keyPath: string; knownHosts: string };
  readonly #connections = new Map<string, GuestConnection>();
  readonly #opening = new Map<string, Promise<GuestConnection>>();

  constructor(deps: { keyPath: string; knownHosts: string }) {
    this.#deps = deps;
  }

  /** Takes over a connection that was just opened (the boot's readiness probe). */
  adopt(vmId: string, client: Client, host: string): GuestConnection {
    this.close(vmId);
    const connection = new GuestConnection(client, host);
    this.#connections.set(vmId, connection);
    return connection;
  }

  /**
   * Waits until a booting guest answers SSH with its pinned host key (see
   * waitForSsh), then keeps that connection as the VM's.
   */
  async waitReady(
    vmId: string,
    host: string,
    options: { deadlineMs: number; signal: AbortSignal; stillBooting: () => BangerError | undefined; hint?: string | undefined },
  ): Promise<void> {
    const client = await waitForSsh({ host, privateKey: readFileSync(this.#deps.keyPath), knownHosts: this.#deps.knownHosts }, options);
    this.adopt(vmId, client, host);
  }

  /** The VM's open connection, opening one when there is none (or it dropped). */
  connection(vmId: string, host: string, timeoutMs = 10_000): Promise<GuestConnection> {
    const existing = this.#connections.get(vmId);
    if (existing?.isOpen === true) return Promise.resolve(existing);
    const pending = this.#opening.get(vmId);
    if (pending !== undefined) return pending;
    const opening = (async () => {
      const client = await connectGuest({ host, privateKey: readFileSync(this.#deps.keyPath), knownHosts: this.#deps.knownHosts }, timeoutMs);
      return this.adopt(vmId, client, host);
    })().finally(() => this.#opening.delete(vmId));
    this.#opening.set(vmId, opening);
    return opening;
  }

  /** Closes the VM's connection: work running on it fails at once (its `closed` signal fires). */
  close(vmId: string): void {
    this.#connections.get(vmId)?.close();
    this.#connections.delete(vmId);
  }

  closeAll(): void {
    for (const id of [...this.#connections.keys()]) this.close(id);
  }
}
