import type { VmStatsSample } from '../../rpc/methods.js';

export type GuestStats = NonNullable<VmStatsSample['guest']>;

/**
 * One small POSIX sh script per sample: shell builtins only, except df (the
 * guest's own, else the busybox banger ships in registry images). Prints
 * `key value…` lines, then df's POSIX output after `@df`.
 */
export const GUEST_STATS_SCRIPT = [
  'while read -r k v _; do case $k in MemTotal:|MemAvailable:|MemFree:|Buffers:|Cached:) echo "$k $v";; esac; done < /proc/meminfo',
  'read -r l < /proc/loadavg && echo "loadavg $l"',
  'read -r u < /proc/uptime && echo "uptime $u"',
  'echo @df',
  '{ df -Pk /root || /banger/busybox df -Pk /root; } 2>/dev/null',
  'exit 0',
].join('\n');

/** Output of GUEST_STATS_SCRIPT beyond this is refused (it prints a few hundred bytes). */
export const GUEST_STATS_MAX_BYTES = 64 * 1024;

/**
 * Parses GUEST_STATS_SCRIPT's output. The guest is not trusted: anything
 * malformed is ignored, and without memory, load and uptime the result is
 * undefined (the sample's guest part is then null). The disk is null on its
 * own when df is missing or unreadable.
 */
export function parseGuestStats(output: string): GuestStats | undefined {
  const [head, dfPart] = splitOnce(output, '\n@df\n');
  const values = new Map<string, string[]>();
  for (const line of head.split('\n').slice(0, 64)) {
    const [key, ...rest] = line.trim().split(/\s+/);
    if (key !== undefined && key !== '' && !values.has(key)) values.set(key, rest);
  }
  const kib = (key: string): number | undefined => {
    const value = decimal(values.get(key)?.[0]);
    return value === undefined || !Number.isInteger(value) ? undefined : value * 1024;
  };
  const memTotal = kib('MemTotal:');
  // Kernels before 3.14 have no MemAvailable: free + buffers + page cache is the usual estimate.
  const free = kib('MemFree:');
  const estimate = free === undefined ? undefined : free + (kib('Buffers:') ?? 0) + (kib('Cached:') ?? 0);
  const memAvailable = kib('MemAvailable:') ?? estimate;
  const load = values.get('loadavg')?.slice(0, 3).map(decimal) ?? [];
  const [load1, load5, load15] = load;
  const uptime = decimal(values.get('uptime')?.[0]);
  if (memTotal === undefined || memAvailable === undefined || load1 === undefined || load5 === undefined || load15 === undefined || uptime === undefined) {
    return undefined;
  }
  const disk = parseDf(dfPart);
  return {
    memTotalBytes: memTotal,
    memAvailableBytes: Math.min(memAvailable, memTotal),
    load1,
    load5,
    load15,
    diskTotalBytes: disk?.totalBytes ?? null,
    diskUsedBytes: disk?.usedBytes ?? null,
    uptimeSeconds: Math.floor(uptime),
  };
}

/**
 * The last line of `df -Pk`: `<filesystem> <1024-blocks> <used> <available>
 * <capacity%> <mounted on>`, read from the end (a filesystem name may hold
 * spaces; the mount point here is /root or /).
 */
export function parseDf(output: string): { totalBytes: number; usedBytes: number } | undefined {
  const line = output
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .at(-1);
  const fields = line?.split(/\s+/) ?? [];
  if (fields.length < 6 || !/^\d+%$/.test(fields.at(-2) ?? '')) return undefined;
  const total = decimal(fields.at(-5));
  const used = decimal(fields.at(-4));
  if (total === undefined || used === undefined || !Number.isInteger(total) || !Number.isInteger(used)) return undefined;
  return { totalBytes: total * 1024, usedBytes: Math.min(used, total) * 1024 };
}

/** A non-negative decimal number of sensible length, or undefined. */
function decimal(text: string | undefined): number | undefined {
  if (text === undefined || !/^\d{1,15}(\.\d{1,6})?$/.test(text)) return undefined;
  return Number(text);
}

function splitOnce(text: string, separator: string): [string, string] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, ''] : [text.slice(0, at), text.slice(at + separator.length)];
}
