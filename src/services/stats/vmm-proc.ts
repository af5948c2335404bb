/**
 * The VMM process's resource use, from the host's /proc: pure parsers of
 * /proc/<pid>/stat and /proc/<pid>/status, and the CPU arithmetic between two
 * readings. Reading the files is the caller's (see StatsService).
 */

/** CPU time and start time of a process, in clock ticks (`/proc/<pid>/stat`). */
export interface ProcCpu {
  /** utime + stime. */
  cpuTicks: number;
  /** When the process started, in ticks after host boot. */
  startTicks: number;
}

/**
 * Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses and
 * may itself hold spaces and parentheses, so fields are counted from the last
 * `)`: utime, stime and starttime are fields 14, 15 and 22.
 */
export function parseProcStat(text: string): ProcCpu | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // fields[0] is field 3 (state).
  const utime = wholeNumber(fields[14 - 3]);
  const stime = wholeNumber(fields[15 - 3]);
  const start = wholeNumber(fields[22 - 3]);
  if (utime === undefined || stime === undefined || start === undefined) return undefined;
  return { cpuTicks: utime + stime, startTicks: start };
}

/** Resident set size in bytes from `/proc/<pid>/status` (`VmRSS:  1234 kB`). */
export function parseStatusRss(text: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB\s*$/m.exec(text);
  const kib = wholeNumber(match?.[1]);
  return kib === undefined ? undefined : kib * 1024;
}

/** Seconds since boot from `/proc/uptime` (`12345.67 23456.78`). */
export function parseUptime(text: string): number | undefined {
  const first = text.trim().split(/\s+/)[0];
  if (first === undefined || !/^\d+(\.\d+)?$/.test(first)) return undefined;
  return Number(first);
}

/** One reading of the VMM's CPU, kept to compute the next sample's percentage. */
export interface CpuReading {
  pid: number;
  cpuTicks: number;
  /** Host monotonic-ish time of the reading, in seconds (host uptime). */
  atSeconds: number;
}

/**
 * CPU use in percent of one host CPU (200 = two CPUs busy), rounded to 0.1.
 * Since the previous reading of the same process when there is one; for the
 * first reading (or a new pid: the VM restarted) the average since the
 * process started. Never negative, and 0 over an empty interval.
 */
export function cpuPercent(current: { pid: number; cpu: ProcCpu; uptimeSeconds: number }, previous: CpuReading | undefined, ticksPerSecond: number): number {
  const since =
    previous?.pid === current.pid && previous.cpuTicks <= current.cpu.cpuTicks
      ? { ticks: previous.cpuTicks, seconds: previous.atSeconds }
      : { ticks: 0, seconds: current.cpu.startTicks / ticksPerSecond };
  const elapsed = current.uptimeSeconds - since.seconds;
  if (!(elapsed > 0) || ticksPerSecond <= 0) return 0;
  const busy = (current.cpu.cpuTicks - since.ticks) / ticksPerSecond;
  return Math.max(0, Math.round((busy / elapsed) * 1000) / 10);
}

function wholeNumber(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,18}$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
