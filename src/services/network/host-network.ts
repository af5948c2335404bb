import { existsSync } from 'node:fs';

import type { Logger } from 'pino';

import { buildInfo } from '../../build-info.js';
import type { NetworkSettings } from '../../config/schema.js';
import type { PrivilegedOps } from '../../root-helper/privileged-ops.js';
import { BangerError } from '../../rpc/errors.js';
import type { NetworkMode } from '../../rpc/schemas.js';
import { TapPool, type PoolStatus } from './tap-pool.js';

/** A VM's place on the network while it runs. */
export interface VmAttachment {
  tap: string;
  guestIp: string;
  mac: string;
  nat: boolean;
  network: VmNetworkName;
}

/** The networks a VM can be on: NETWORK_MODES, the rule the CLI, config and RPC params check. */
export type VmNetworkName = NetworkMode;

export interface NetworkStatus {
  /** Who performs the privileged changes: the root helper, or this (root) daemon itself. */
  privileged: PrivilegedOps['mode'];
  bridge: string;
  subnet: string;
  dnsPort: number;
  ready: boolean;
  resolver: string | null;
  pool: PoolStatus;
}

/**
 * The host side of VM networking, as the daemon sees it: the bridge (made
 * ready once, with banger's nftables tables), taps from the pool, NAT per VM,
 * and the shared network. Every change goes through PrivilegedOps; this class
 * decides what to ask for and keeps the pool.
 */
export class HostNetwork {
  readonly #ops: PrivilegedOps;
  readonly #settings: NetworkSettings;
  readonly #log: Logger;
  readonly #afterBridge: () => Promise<string | undefined>;
  readonly #uid: number;
  readonly pool: TapPool;
  #ready: Promise<void> | undefined;
  #isReady = false;
  #forwarding = false;
  #resolver: string | null = null;

  /**
   * `afterBridge` runs once the bridge exists (binding the DNS server to its
   * address, routing the resolver); it returns a line describing resolver routing.
   */
  constructor(deps: { ops: PrivilegedOps; settings: NetworkSettings; uid: number; log: Logger; afterBridge?: () => Promise<string | undefined> }) {
    this.#ops = deps.ops;
    this.#settings = deps.settings;
    this.#log = deps.log;
    this.#afterBridge = deps.afterBridge ?? (() => Promise.resolve(undefined));
    this.#uid = deps.uid;
    this.pool = new TapPool({ ops: deps.ops, bridge: deps.settings.bridge, uid: deps.uid, size: deps.settings.tapPool, log: deps.log });
  }

  get bridge(): string {
    return this.#settings.bridge;
  }

  get ops(): PrivilegedOps {
    return this.#ops;
  }

  status(): NetworkStatus {
    return {
      privileged: this.#ops.mode,
      bridge: this.#settings.bridge,
      subnet: this.#settings.subnet,
      dnsPort: this.#settings.dnsPort,
      ready: this.#isReady,
      resolver: this.#resolver,
      pool: this.pool.status(),
    };
  }

  /**
   * Checks the helper (same build, same bridge and subnet as our config),
   * then makes the bridge and banger's tables ready. Once per daemon;
   * concurrent callers share it, and a failure lets the next caller retry.
   */
  ensureReady(): Promise<void> {
    this.#ready ??= this.#setUp().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  async #setUp(): Promise<void> {
    if (this.#ops.mode === 'helper') {
      const hello = await this.#ops.hello();
      const ours = buildInfo();
      if (hello.buildId !== ours.buildId) {
        throw new BangerError('ERR_HELPER_MISMATCH', `the root helper is build ${hello.buildId}, this banger is build ${ours.buildId}`, {
          hint: 'install the helper from this build: `sudo banger system install`',
        });
      }
      if (hello.bridge !== this.#settings.bridge || hello.subnet !== this.#settings.subnet) {
        throw new BangerError(
          'ERR_HELPER_MISMATCH',
          `the root helper lets you use bridge ${hello.bridge} with ${hello.subnet}, but config.toml says ${this.#settings.bridge} with ${this.#settings.subnet}`,
          { hint: 'run `sudo banger system install` again after changing [network], or set [network] back' },
        );
      }
    }
    await this.#ops.ensureBridge(this.#settings.bridge, this.#settings.dnsPort);
    this.#isReady = true;
    this.#resolver = (await this.#afterBridge()) ?? null;
    this.pool.refill();
  }

  /**
   * A tap for a VM: from the pool, or created on the spot. A bridge removed
   * behind the daemon's back (by hand, or a reboot of the network) is set
   * up again, and the pool's taps, detached with it, are replaced.
   */
  async acquireTap(): Promise<string> {
    if (this.#isReady && !existsSync(`/sys/class/net/${this.#settings.bridge}`)) {
      this.#log.warn({ bridge: this.#settings.bridge }, 'the bridge disappeared: setting it up again');
      this.#ready = undefined;
      this.#isReady = false;
      await this.pool.discardIdle();
    }
    await this.ensureReady();
    return this.pool.take();
  }

  /** Binds a VM's tap to it, puts it on its network, and turns its NAT on if asked. */
  async attach(vm: VmAttachment): Promise<void> {
    await this.#ops.attachTap(vm.tap, vm.guestIp, vm.mac, vm.network);
    if (vm.nat) await this.setNat(vm.guestIp, true);
  }

  /**
   * Undoes what a run of a VM set up on the host. NAT is removed by guest
   * address, which derives from the VM's slot, so this works even when the
   * handles (and so the tap's name) were lost; the tap, when known, is reset
   * to isolated and returned to the pool.
   */
  async detach(guestIp: string, tap: string | undefined): Promise<void> {
    await this.#ops.setNat(guestIp, false);
    if (tap === undefined) return;
    try {
      await this.#ops.releaseTap(tap);
      await this.pool.give(tap);
    } catch (error) {
      // A tap that vanished (or is not ours) cannot go back to the pool.
      this.pool.forget(tap);
      await this.#ops.deleteTap(tap).catch(() => undefined);
      this.#log.warn({ tap, err_message: error instanceof Error ? error.message : String(error) }, 'tap not returned to the pool');
    }
  }

  async setNat(guestIp: string, enabled: boolean): Promise<void> {
    if (enabled && !this.#forwarding) {
      await this.#ops.enableForwarding();
      this.#forwarding = true;
    }
    await this.#ops.setNat(guestIp, enabled);
  }

  /**
   * At daemon start, with the VMs that are still alive: their taps stay in
   * use and their NAT is restored if it went missing; every other tap of
   * ours is adopted into the pool (while it has room; reset and made whole,
   * on the bridge and up) or deleted; NAT for
   * any other address is removed. Failing to reach the helper is logged, not
   * fatal: the daemon still serves images and kernels.
   */
  async reconcile(live: readonly VmAttachment[]): Promise<void> {
    let state;
    try {
      state = await this.#ops.state();
    } catch (error) {
      this.#log.warn({ err_message: error instanceof Error ? error.message : String(error) }, 'reconcile: host network state unavailable');
      return;
    }
    const liveTaps = new Set(live.map((vm) => vm.tap));
    this.pool.adopt([], [...liveTaps]);
    for (const tap of state.taps) {
      if (liveTaps.has(tap) || this.pool.holds(tap)) continue;
      if (this.pool.hasRoom()) {
        // Unbound from its old VM, then made whole (a daemon killed while making it may have left it off the bridge or down).
        const reset = async (): Promise<void> => {
          await this.#ops.releaseTap(tap);
          await this.#ops.createTap(tap, this.#uid);
        };
        if (await this.#tolerant(`reset ${tap}`, reset)) this.pool.adopt([tap], []);
      } else if (await this.#tolerant(`delete ${tap}`, () => this.#ops.deleteTap(tap))) {
        this.#log.info({ tap }, 'reconcile: removed a tap no VM uses');
      }
    }
    const natWanted = new Set(live.filter((vm) => vm.nat).map((vm) => vm.guestIp));
    for (const address of state.natGuests) {
      if (natWanted.has(address)) continue;
      if (await this.#tolerant(`NAT off for ${address}`, () => this.#ops.setNat(address, false))) {
        this.#log.info({ guest_ip: address }, 'reconcile: removed NAT of a VM that is gone');
      }
    }
    // Live VMs keep (or get back) their binding, network and NAT: all idempotent.
    for (const vm of live) {
      await this.#tolerant(`attach ${vm.tap}`, () => this.#ops.attachTap(vm.tap, vm.guestIp, vm.mac, vm.network));
      if (vm.nat && !state.natGuests.includes(vm.guestIp)) await this.#tolerant(`NAT on for ${vm.guestIp}`, () => this.setNat(vm.guestIp, true));
    }
  }

  /** Runs one reconcile step; a failure is logged and the rest go on (a refused step must not stop the daemon starting). */
  async #tolerant(what: string, step: () => Promise<void>): Promise<boolean> {
    try {
      await step();
      return true;
    } catch (error) {
      this.#log.warn({ err_message: error instanceof Error ? error.message : String(error) }, `reconcile: could not ${what}`);
      return false;
    }
  }

  /** At daemon stop: resolver routing is reverted (the bridge, its tables and the pool's taps stay for the next daemon). */
  async close(): Promise<void> {
    if (this.#resolver === null) return;
    try {
      await this.#ops.revertResolver(this.#settings.bridge);
    } catch (error) {
      this.#log.warn({ err_message: error instanceof Error ? error.message : String(error) }, 'could not revert resolver routing');
    }
    this.#resolver = null;
  }
}
