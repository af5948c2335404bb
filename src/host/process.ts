import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Process helpers: liveness by pid, identity by command line, kill and wait. */

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True when `pid` runs and its command line mentions `marker` (a path unique
 * to the VM): a recycled pid belonging to something else does not count.
 * A zombie (exited, not yet reaped) does not count either.
 */
export function processMatches(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.includes(') Z ')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

export async function waitForExit(pid: number, marker: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (processMatches(pid, marker)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/** SIGKILLs the process if it is still the one we started (`marker` in its command line) and waits for it to go. */
export async function killProcess(pid: number, marker: string): Promise<void> {
  if (!processMatches(pid, marker)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone meanwhile
  }
  await waitForExit(pid, marker, 5000);
}

/**
 * The first live (non-zombie) process whose command line contains one of
 * `markers`, and which marker it holds: pgrep -f without the shell-out, in
 * one pass over /proc however many markers are looked for.
 */
export function findProcess(markers: readonly string[]): { pid: number; marker: string } | undefined {
  for (const entry of listDir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    const marker = markers.find((m) => cmdline.includes(m));
    if (marker !== undefined && processMatches(pid, marker)) return { pid, marker };
  }
  return undefined;
}

/** The argv of a process, or undefined when it is gone or unreadable. */
export function processArgv(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
  } catch {
    return undefined;
  }
}

/**
 * The tun/tap interfaces a process has open (`iff:` in /proc/<pid>/fdinfo of
 * each /dev/net/tun descriptor): how a VMM's tap is found without any record
 * of it.
 */
export function openTapInterfaces(pid: number): string[] {
  const taps: string[] = [];
  for (const fd of listDir(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== '/dev/net/tun') continue;
      const iff = /^iff:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (iff?.[1] !== undefined) taps.push(iff[1]);
    } catch {
      // the descriptor closed meanwhile
    }
  }
  return taps;
}

/** Pids of the processes (this user's, or any for root) that hold one of `paths` open. */
export function processesHolding(paths: readonly string[]): number[] {
  const wanted = new Set(paths);
  const holders: number[] = [];
  for (const entry of listDir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const holds = listDir(`/proc/${entry}/fd`).some((fd) => {
      try {
        return wanted.has(readlinkSync(`/proc/${entry}/fd/${fd}`));
      } catch {
        return false;
      }
    });
    if (holds) holders.push(Number(entry));
  }
  return holders;
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}
