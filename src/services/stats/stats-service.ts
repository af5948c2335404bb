import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';

import type { Logger } from 'pino';

import type { VmStatsInfo, VmStatsSample } from '../../rpc/methods.js';
import type { VmService, VmView } from '../vm/vm-service.js';
import type { DaemonEventBus } from './event-bus.js';
import { GUEST_STATS_MAX_BYTES, GUEST_STATS_SCRIPT, parseGuestStats } from './guest-stats.js';
import { runProbe, type ProbeGuest } from './guest-probe.js';
import { StatsHistory } from './stats-history.js';
import { cpuPercent, parseProcStat, parseStatusRss, parseUptime } from './vmm-proc.js';

/** Samples kept per VM: five minutes at the default interval. */
export const STATS_HISTORY_SIZE = 60;

/** The longest a guest may take to answer one sample. */
const GUEST_TIMEOUT_CAP_MS = 10_000;

export interface StatsServiceDeps {
  vms: Pick<VmService, 'list' | 'show'> & { guest: (ref: string) => Promise<{ guest: ProbeGuest }> };
  events: DaemonEventBus;
  /** stats_poll_interval. */
  intervalMs: number;
  log: Logger;
  historySize?: number | undefined;
  /** Reads a host /proc file (tests give fakes). */
  readProc?: (path: string) => Promise<string>;
  /** The host's clock ticks per second (`getconf CLK_TCK`, 100 on Linux x86_64). */
  ticksPerSecond?: () => Promise<number>;
  now?: () => Date;
}

/**
 * Samples every running VM each `intervalMs`: its VMM process from the
 * host's /proc (CPU since the previous sample, RSS) and the guest's memory,
 * load, uptime and /root disk over its open connection (one small script, see
 * GUEST_STATS_SCRIPT). Keeps a short history per VM and publishes each sample
 * as a vm.stats event.
 *
 * Sampling never disturbs a VM: a guest that does not answer (busy, booting,
 * no df) only makes that sample's guest part null, logged at debug. The loop
 * runs only while some VM runs (a VM that starts wakes it, through its
 * vm.changed event), never overlaps itself, and its timer does not keep the
 * process alive; close() stops it and waits for a sample in progress.
 */
export class StatsService {
  readonly #deps: StatsServiceDeps;
  readonly #history: StatsHistory;
  readonly #readProc: (path: string) => Promise<string>;
  readonly #closing = new AbortController();
  readonly #sampling = new Map<string, Promise<VmStatsSample | undefined>>();
  #ticksPerSecond: Promise<number> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #unsubscribe: (() => void) | undefined;

  constructor(deps: StatsServiceDeps) {
    this.#deps = deps;
    this.#history = new StatsHistory(deps.historySize ?? STATS_HISTORY_SIZE);
    this.#readProc = deps.readProc ?? ((path) => readFile(path, 'utf8'));
  }

  get intervalMs(): number {
    return this.#deps.intervalMs;
  }

  /** Follows VM changes (a VM that runs wakes the loop; one that stops or is deleted loses its history) and looks once for running VMs. */
  start(): void {
    if (this.#unsubscribe !== undefined || this.#closing.signal.aborted) return;
    this.#unsubscribe = this.#deps.events.subscribe(
      (event) => {
        if (event.kind === 'vm.deleted') this.#history.forget(event.vm.id);
        else if (event.kind === 'vm.changed') {
          if (event.vm.state === 'running') this.#wake();
          else this.#history.forget(event.vm.id);
        }
      },
      ['vm.changed', 'vm.deleted'],
    );
    this.#wake();
  }

  /** Stops the loop; resolves once a sample in progress has ended (its guest commands are killed). */
  async close(): Promise<void> {
    this.#closing.abort(new Error('the daemon is shutting down'));
    this.#unsubscribe?.();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#tick;
    await Promise.all([...this.#sampling.values()]);
  }

  /** Whether a poll is scheduled or running (tests: the loop sleeps while no VM runs). */
  get polling(): boolean {
    return this.#timer !== undefined || this.#tick !== undefined;
  }

  latest(vmId: string): VmStatsSample | null {
    return this.#history.latest(vmId);
  }

  /**
   * vm.stats: one VM (any state; a stopped one has no samples) or every
   * running VM. A running VM not sampled yet (just started) is sampled now
   * rather than answered empty.
   */
  async stats(ref: string | undefined): Promise<VmStatsInfo[]> {
    const views = ref === undefined ? (await this.#deps.vms.list()).filter(isRunning) : [await this.#deps.vms.show(ref)];
    await Promise.all(views.filter((view) => isRunning(view) && this.#history.latest(view.vm.id) === null).map((view) => this.#sample(view)));
    return views.map((view) => {
      const running = isRunning(view);
      return {
        vm: view.vm.name,
        id: view.vm.id,
        state: view.vm.state === 'running' && !view.alive ? 'stopped' : view.vm.state,
        latest: running ? this.#history.latest(view.vm.id) : null,
        history: running ? this.#history.samples(view.vm.id) : [],
        intervalMs: this.#deps.intervalMs,
      };
    });
  }

  #isClosed(): boolean {
    return this.#closing.signal.aborted;
  }

  #wake(): void {
    if (this.#closing.signal.aborted || this.#timer !== undefined || this.#tick !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tick = this.#poll().finally(() => {
        this.#tick = undefined;
        if (this.#keepPolling) this.#wake();
      });
    }, this.#deps.intervalMs);
    this.#timer.unref();
  }

  #keepPolling = false;

  async #poll(): Promise<void> {
    this.#keepPolling = false;
    let running: VmView[];
    try {
      // list() also notices a VM whose VMM exited on its own (and records it stopped, which publishes vm.changed).
      running = (await this.#deps.vms.list()).filter(isRunning);
    } catch (error) {
      this.#deps.log.debug({ err_message: messageOf(error) }, 'stats: could not list VMs');
      this.#keepPolling = true;
      return;
    }
    this.#history.retain(new Set(running.map((view) => view.vm.id)));
    await Promise.all(running.map((view) => this.#sample(view)));
    this.#keepPolling = running.length > 0 && !this.#closing.signal.aborted;
  }

  /** One sample of a running VM (joined when one is already under way); undefined when its VMM is gone. */
  #sample(view: VmView): Promise<VmStatsSample | undefined> {
    const id = view.vm.id;
    const pending = this.#sampling.get(id);
    if (pending !== undefined) return pending;
    const sampling = this.#takeSample(view).finally(() => this.#sampling.delete(id));
    this.#sampling.set(id, sampling);
    return sampling;
  }

  async #takeSample(view: VmView): Promise<VmStatsSample | undefined> {
    const { vm, pid } = view;
    if (pid === null || this.#isClosed()) return undefined;
    const track = this.#history.track(vm.id);
    const at = (this.#deps.now?.() ?? new Date()).toISOString();
    let vmm: VmStatsSample['vmm'];
    try {
      const [stat, status, uptime, ticks] = await Promise.all([
        this.#readProc(`/proc/${pid}/stat`),
        this.#readProc(`/proc/${pid}/status`),
        this.#readProc('/proc/uptime'),
        this.#clockTicks(),
      ]);
      const cpu = parseProcStat(stat);
      const rssBytes = parseStatusRss(status);
      const uptimeSeconds = parseUptime(uptime);
      if (cpu === undefined || rssBytes === undefined || uptimeSeconds === undefined) throw new Error(`unexpected /proc/${pid} contents`);
      vmm = { cpuPercent: cpuPercent({ pid, cpu, uptimeSeconds }, track.lastCpu, ticks), rssBytes };
      track.lastCpu = { pid, cpuTicks: cpu.cpuTicks, atSeconds: uptimeSeconds };
    } catch (error) {
      // The VMM exited between the listing and now: no sample; the next listing records the VM stopped.
      this.#deps.log.debug({ vm: vm.name, pid, err_message: messageOf(error) }, 'stats: could not read the VMM process');
      return undefined;
    }
    const guest = await this.#guestPart(view);
    // Stopped or deleted while the guest answered: the sample belongs to no running VM.
    if (!this.#history.isCurrent(vm.id, track) || this.#isClosed()) return undefined;
    const sample: VmStatsSample = { at, vmm, guest };
    this.#history.add(track, sample);
    this.#deps.events.publish({ kind: 'vm.stats', vm: { id: vm.id, name: vm.name }, sample });
    return sample;
  }

  async #guestPart(view: VmView): Promise<VmStatsSample['guest']> {
    const timeoutMs = Math.min(Math.max(this.#deps.intervalMs, 1000), GUEST_TIMEOUT_CAP_MS);
    const signal = AbortSignal.any([this.#closing.signal, AbortSignal.timeout(timeoutMs)]);
    try {
      // Fetching the connection waits for the VM's lock (a stop in progress): bounded by the same timeout.
      const { guest } = await untilAborted(this.#deps.vms.guest(view.vm.id), signal);
      const output = await runProbe(guest, GUEST_STATS_SCRIPT, { maxBytes: GUEST_STATS_MAX_BYTES, signal, what: 'the stats probe' });
      const parsed = parseGuestStats(output);
      if (parsed === undefined) throw new Error(`unexpected output: ${JSON.stringify(output.slice(0, 120))}`);
      return parsed;
    } catch (error) {
      this.#deps.log.debug({ vm: view.vm.name, err_message: messageOf(error) }, 'stats: no guest sample this time');
      return null;
    }
  }

  #clockTicks(): Promise<number> {
    this.#ticksPerSecond ??= this.#deps.ticksPerSecond?.() ?? hostClockTicks();
    return this.#ticksPerSecond;
  }
}

function isRunning(view: VmView): boolean {
  return view.alive && view.vm.state === 'running' && view.pid !== null;
}

/** `getconf CLK_TCK`; 100 (what Linux uses on x86_64) when getconf is missing or says something odd. */
function hostClockTicks(): Promise<number> {
  return new Promise((resolve) => {
    execFile('getconf', ['CLK_TCK'], { timeout: 5000 }, (error, stdout) => {
      const ticks = Number(stdout.trim());
      resolve(error === null && Number.isInteger(ticks) && ticks > 0 && ticks <= 100_000 ? ticks : 100);
    });
  });
}

/** `promise`, or a rejection with the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => {
      signal.removeEventListener('abort', onAbort);
    });
  });
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
