import type { VmStatsSample } from '../../rpc/methods.js';
import type { CpuReading } from './vmm-proc.js';

/** What is kept about one running VM between samples. */
export interface VmTrack {
  /** Oldest first, at most the history size. */
  readonly samples: VmStatsSample[];
  /** The last CPU reading of its VMM, for the next sample's percentage. */
  lastCpu: CpuReading | undefined;
}

/**
 * The recent samples of each running VM: a short window (the last `size`
 * samples), forgotten when the VM stops or is deleted. A track is an object
 * of its own so a sample that finishes after its VM was forgotten can tell
 * (see `isCurrent`) and is dropped instead of bringing the VM back.
 */
export class StatsHistory {
  readonly #tracks = new Map<string, VmTrack>();
  readonly #size: number;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new Error(`history size must be a positive integer, got ${size}`);
    this.#size = size;
  }

  track(vmId: string): VmTrack {
    let track = this.#tracks.get(vmId);
    if (track === undefined) {
      track = { samples: [], lastCpu: undefined };
      this.#tracks.set(vmId, track);
    }
    return track;
  }

  isCurrent(vmId: string, track: VmTrack): boolean {
    return this.#tracks.get(vmId) === track;
  }

  add(track: VmTrack, sample: VmStatsSample): void {
    track.samples.push(sample);
    if (track.samples.length > this.#size) track.samples.splice(0, track.samples.length - this.#size);
  }

  latest(vmId: string): VmStatsSample | null {
    return this.#tracks.get(vmId)?.samples.at(-1) ?? null;
  }

  samples(vmId: string): VmStatsSample[] {
    return [...(this.#tracks.get(vmId)?.samples ?? [])];
  }

  forget(vmId: string): void {
    this.#tracks.delete(vmId);
  }

  /** Forgets every VM not in `keep`. */
  retain(keep: ReadonlySet<string>): void {
    for (const id of [...this.#tracks.keys()]) if (!keep.has(id)) this.#tracks.delete(id);
  }

  get vmIds(): string[] {
    return [...this.#tracks.keys()];
  }
}
