/**
 * What the daemon reports about running VMs besides their records: resource
 * samples (vm.stats), listening guest sockets (vm.ports) and the event
 * stream (daemon.events). Part of the method table (./methods.ts re-exports
 * all of it); kept apart to keep that file to the table itself.
 */

import type { VmInfo } from './methods.js';

/** One sample of a running VM's resource use (vm.stats, the vm.stats event). */
export interface VmStatsSample {
  /** When it was taken (ISO 8601). */
  at: string;
  /** The VMM process on the host, from /proc. */
  vmm: {
    /** CPU used since the previous sample, in percent of one host CPU (200 = two CPUs busy). */
    cpuPercent: number;
    rssBytes: number;
  };
  /** From inside the guest over its open connection; null when the guest did not answer this time. */
  guest: {
    memTotalBytes: number;
    memAvailableBytes: number;
    load1: number;
    load5: number;
    load15: number;
    /** The work disk mounted at /root (null when the guest has no usable df). */
    diskTotalBytes: number | null;
    diskUsedBytes: number | null;
    uptimeSeconds: number;
  } | null;
}

export interface VmStatsInfo {
  /** The VM's name. */
  vm: string;
  id: string;
  state: VmInfo['state'];
  /** The most recent sample; null before the first one (or when not running). */
  latest: VmStatsSample | null;
  /** Recent samples, oldest first (a short window: see stats_poll_interval). */
  history: VmStatsSample[];
  /** How often the daemon samples, in ms. */
  intervalMs: number;
}

export interface VmStatsParams {
  /** One VM; every running VM when left out. */
  ref?: string;
}

/** A listening socket in the guest (vm.ports). */
export interface GuestPortInfo {
  proto: 'tcp' | 'udp';
  /** The address it is bound to in the guest (0.0.0.0, ::, 127.0.0.1…). */
  bindAddress: string;
  port: number;
  /** The process that owns it, when the guest reports one. */
  process: string | null;
  pid: number | null;
  /** Where the host reaches it (the guest's IP and the port); null for a socket bound to the guest's loopback only. */
  hostAddress: string | null;
}

/**
 * Pushed on a daemon.events subscription (EVENT_NOTIFICATION): a VM's state
 * changed (created, started, stopped, failed…), a VM was deleted, or a new
 * stats sample of a running VM.
 */
export type DaemonEvent =
  | { token: string; kind: 'vm.changed'; vm: VmInfo }
  | { token: string; kind: 'vm.deleted'; vm: { id: string; name: string } }
  | { token: string; kind: 'vm.stats'; vm: { id: string; name: string }; sample: VmStatsSample };

export type DaemonEventKind = DaemonEvent['kind'];
export const DAEMON_EVENT_KINDS: readonly DaemonEventKind[] = ['vm.changed', 'vm.deleted', 'vm.stats'];

export const EVENT_NOTIFICATION = '$/banger/event';

export interface EventsParams {
  /** Chosen by the client; every event of this subscription carries it. */
  subscriptionToken: string;
  /** Only these kinds (default: all). */
  kinds?: DaemonEventKind[];
}
