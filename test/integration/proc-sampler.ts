import { readdirSync, readFileSync } from 'node:fs';

/**
 * Watches the process tree under one pid by sampling /proc, for tests that
 * must show what a build runs as.
 *
 * Which processes belong to the build: every descendant of the process the
 * test spawned, found each sample by following the parent links in
 * /proc/<pid>/stat. That covers everything a build starts, including what
 * runs inside its namespaces (a pid namespace's processes are still children
 * of their host-side parent, and orphans inside it are re-parented to the
 * namespace's init, itself a descendant), and nothing else on the machine.
 * Something that double-forks out of the tree, or lives less than one
 * sampling interval, can be missed; that is the limit of sampling.
 *
 * Each sample reads every descendant's name, command line and real/effective
 * uids from /proc/<pid>/status (host ids, as seen from the test) afresh, so a
 * process that later execs a setuid program or changes its ids is caught too.
 */

export interface SampledProcess {
  pid: number;
  /** Process start time (clock ticks since boot): with the pid, identifies the process. */
  startTime: number;
  name: string;
  cmdline: string;
  realUid: number;
  effectiveUid: number;
}

export class ProcSampler {
  /** Every process seen (as last sampled), by `${pid}:${startTime}`. */
  readonly seen = new Map<string, SampledProcess>();
  /** Every distinct observation (process and name) with real or effective uid 0. */
  readonly rootSightings = new Map<string, SampledProcess>();
  /** Every process name observed. */
  readonly names = new Set<string>();
  samples = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    readonly rootPid: number,
    intervalMs = 50,
  ) {
    this.#timer = setInterval(() => {
      this.sample();
    }, intervalMs);
    this.sample();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  sample(): void {
    this.samples++;
    const children = new Map<number, number[]>();
    const starts = new Map<number, number>();
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = readStat(Number(entry));
      if (stat === undefined) continue;
      starts.set(Number(entry), stat.startTime);
      const siblings = children.get(stat.ppid) ?? [];
      siblings.push(Number(entry));
      children.set(stat.ppid, siblings);
    }
    const queue = [...(children.get(this.rootPid) ?? [])];
    for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
      queue.push(...(children.get(pid) ?? []));
      const startTime = starts.get(pid) ?? 0;
      const info = readStatus(pid);
      if (info === undefined) continue; // exited meanwhile
      const observed = { pid, startTime, ...info };
      this.seen.set(`${pid}:${startTime}`, observed);
      this.names.add(observed.name);
      if (observed.realUid === 0 || observed.effectiveUid === 0) this.rootSightings.set(`${pid}:${startTime}:${observed.name}`, observed);
    }
  }
}

/** Whether a process seen earlier still runs (same pid and start time, not a zombie). */
export function stillRunning(sampled: SampledProcess): boolean {
  const stat = readStat(sampled.pid);
  return stat?.startTime === sampled.startTime && stat.state !== 'Z';
}

function readStat(pid: number): { ppid: number; startTime: number; state: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain anything.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', ppid: Number(fields[1]), startTime: Number(fields[19]) };
  } catch {
    return undefined;
  }
}

function readStatus(pid: number): Omit<SampledProcess, 'pid' | 'startTime'> | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const name = /^Name:\t(.*)$/m.exec(status)?.[1] ?? '?';
    const uids = (/^Uid:\t(.*)$/m.exec(status)?.[1] ?? '').split('\t').map(Number);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
    return { name, cmdline, realUid: uids[0] ?? NaN, effectiveUid: uids[1] ?? NaN };
  } catch {
    return undefined;
  }
}
