import { readFileSync } from 'node:fs';

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
