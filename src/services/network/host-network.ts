import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

import { requireRoot, runCommand } from '../../host/privileged.js';
import { gatewayAddress, type NetworkConfig } from './slot.js';

const run = promisify(execFile);

/**
 * The host side of VM networking for now: one bridge carrying the subnet's
 * gateway address, one tap per running VM attached to it. Every call here is
 * privileged and goes through `ip`; the networking work moves them behind the
 * root helper (with NAT, DNS and a tap pool).
 */
export class HostNetwork {
  readonly #config: NetworkConfig;
  /** Concurrent starts share one bridge setup (two `ip link add` of one name would race). */
  #bridgeSetup: Promise<void> | undefined;

  constructor(config: NetworkConfig) {
    this.#config = config;
  }

  get bridge(): string {
    return this.#config.bridge;
  }

  /** Creates the bridge with the gateway address if needed. Idempotent; concurrent calls share one setup. */
  ensureBridge(signal?: AbortSignal): Promise<void> {
    requireRoot('creating the VM bridge');
    const setup = (this.#bridgeSetup ??= this.#setUpBridge(signal).finally(() => {
      this.#bridgeSetup = undefined;
    }));
    return setup;
  }

  async #setUpBridge(signal?: AbortSignal): Promise<void> {
    if (!(await linkExists(this.#config.bridge))) {
      await ip(['link', 'add', this.#config.bridge, 'type', 'bridge'], signal);
    }
    const address = gatewayAddress(this.#config);
    const { stdout } = await run('ip', ['-4', '-o', 'addr', 'show', 'dev', this.#config.bridge]);
    if (!stdout.includes(` ${address} `)) await ip(['addr', 'add', address, 'dev', this.#config.bridge], signal);
    await ip(['link', 'set', this.#config.bridge, 'up'], signal);
  }

  /** Creates a tap on the bridge, replacing a stale one of the same name. */
  async createTap(tap: string, signal?: AbortSignal): Promise<void> {
    requireRoot('creating a tap device');
    await this.deleteTap(tap);
    await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap'], signal);
    await ip(['link', 'set', tap, 'master', this.#config.bridge], signal);
    await ip(['link', 'set', tap, 'up'], signal);
  }

  /** Deletes a tap if it exists. Idempotent. */
  async deleteTap(tap: string): Promise<void> {
    if (await linkExists(tap)) await ip(['link', 'del', tap]);
  }
}

export async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

function ip(args: string[], signal?: AbortSignal): Promise<void> {
  return runCommand('ip', args, { signal });
}
