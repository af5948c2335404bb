import type { HostNetState } from './host-net.js';
import { executeOperation, type HelperHello } from './operations.js';
import type { HelperPolicy } from './policy.js';

/**
 * Every host change that needs root, as one interface. The daemon never runs
 * `ip`, `nft` or `bridge` itself: it asks a PrivilegedOps. Two
 * implementations share one path: HelperClient sends each call to the root
 * helper (banger-root) over its unix socket; InProcessOps, used only when
 * banger itself runs as root, calls the same executeOperation the helper
 * runs, so the allow-list and its checks are one piece of code either way.
 */
export abstract class PrivilegedOps {
  /** How calls are carried out: by the root helper, or in this (root) process. */
  abstract readonly mode: 'helper' | 'in-process';

  /** Carries out one operation of the allow-list (src/root-helper/operations.ts). */
  protected abstract call(op: string, args: Record<string, unknown>): Promise<unknown>;

  hello(): Promise<HelperHello> {
    return this.call('hello', {}) as Promise<HelperHello>;
  }

  async ensureBridge(bridge: string, dnsPort: number): Promise<void> {
    await this.call('bridge.ensure', { bridge, dnsPort });
  }

  async deleteBridge(bridge: string): Promise<void> {
    await this.call('bridge.delete', { bridge });
  }

  /** A tap owned by `uid` (must be the caller's), attached to the bridge, isolated. */
  async createTap(tap: string, uid: number): Promise<void> {
    await this.call('tap.create', { tap, uid });
  }

  async deleteTap(tap: string): Promise<void> {
    await this.call('tap.delete', { tap });
  }

  /** Binds a tap to its VM (it may send only with that MAC and address) and puts it on the VM's network. */
  async attachTap(tap: string, guestIp: string, mac: string, network: 'isolated' | 'shared'): Promise<void> {
    await this.call('tap.attach', { tap, guestIp, mac, network });
  }

  /** Unbinds a tap from its VM and isolates it (for the pool). */
  async releaseTap(tap: string): Promise<void> {
    await this.call('tap.release', { tap });
  }

  async setNat(guestIp: string, enabled: boolean): Promise<void> {
    await this.call('nat.set', { guestIp, enabled });
  }

  async enableForwarding(): Promise<void> {
    await this.call('forwarding.enable', {});
  }

  routeResolver(bridge: string, dnsPort: number): Promise<{ routed: boolean; detail: string }> {
    return this.call('resolver.route', { bridge, dnsPort }) as Promise<{ routed: boolean; detail: string }>;
  }

  async revertResolver(bridge: string): Promise<void> {
    await this.call('resolver.revert', { bridge });
  }

  state(): Promise<HostNetState> {
    return this.call('state', {}) as Promise<HostNetState>;
  }
}

/** For banger running as root: the helper's operations, with its checks, in this process. */
export class InProcessOps extends PrivilegedOps {
  readonly mode = 'in-process';
  readonly #policy: HelperPolicy;

  constructor(policy: HelperPolicy) {
    super();
    this.#policy = policy;
  }

  protected call(op: string, args: Record<string, unknown>): Promise<unknown> {
    return executeOperation(this.#policy, op, args);
  }
}
