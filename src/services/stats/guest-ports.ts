import type { GuestPortInfo } from '../../rpc/methods.js';

/**
 * Lists the guest's listening sockets without ss or netstat (minimal images
 * have busybox, registry images anything): the kernel's socket tables from
 * /proc/net, one `ls -l` of every process's fd directory (socket fds read
 * `socket:[<inode>]`) and each process's comm, read with shell builtins. The
 * host does all the parsing (parseGuestPorts).
 */
export const GUEST_PORTS_SCRIPT = [
  'for f in tcp tcp6 udp udp6; do [ -r /proc/net/$f ] && { echo "@net $f"; cat /proc/net/$f; }; done',
  'echo @fd',
  'ls -l /proc/[0-9]*/fd 2>/dev/null',
  'echo @comm',
  'for p in /proc/[0-9]*; do { read -r c < "$p/comm"; } 2>/dev/null && echo "${p#/proc/} $c"; done',
  'exit 0',
].join('\n');

/** Output of GUEST_PORTS_SCRIPT beyond this is refused (a busy guest prints tens of KiB). */
export const GUEST_PORTS_MAX_BYTES = 8 * 1024 * 1024;

const MAX_COMM_LENGTH = 64;
/** TCP_LISTEN in /proc/net/tcp*. */
const TCP_LISTEN = '0A';

type Proto = GuestPortInfo['proto'];

interface Socket {
  proto: Proto;
  address: string;
  port: number;
  inode: number;
}

/**
 * Parses GUEST_PORTS_SCRIPT's output into the guest's listening sockets:
 * TCP sockets in LISTEN, UDP sockets bound with no remote end. Each gets the
 * process holding it (the lowest pid, when several share it after a fork) and,
 * when the host can reach it at the guest's address (bound to a wildcard or
 * to `guestIp`), `hostAddress`. Output is untrusted: malformed lines are
 * skipped, names are cut short and stripped of control characters.
 */
export function parseGuestPorts(output: string, guestIp: string): GuestPortInfo[] {
  const sockets: Socket[] = [];
  const owners = new Map<number, number>();
  const comms = new Map<number, string>();
  let section: 'none' | Proto | 'tcp6' | 'udp6' | 'fd' | 'comm' = 'none';
  let fdPid: number | undefined;
  for (const line of output.split('\n')) {
    if (line.startsWith('@')) {
      const marker = /^@net (tcp6?|udp6?)$/.exec(line);
      section = marker !== null ? (marker[1] as Proto | 'tcp6' | 'udp6') : line === '@fd' ? 'fd' : line === '@comm' ? 'comm' : 'none';
      fdPid = undefined;
      continue;
    }
    if (section === 'tcp' || section === 'tcp6' || section === 'udp' || section === 'udp6') {
      const socket = parseSocketLine(line, section);
      if (socket !== undefined) sockets.push(socket);
    } else if (section === 'fd') {
      const header = /^\/proc\/(\d{1,9})\/fd:$/.exec(line.trim());
      if (header !== null) {
        fdPid = Number(header[1]);
        continue;
      }
      const inode = /-> socket:\[(\d{1,12})\]$/.exec(line.trimEnd());
      if (inode !== null && fdPid !== undefined) {
        const key = Number(inode[1]);
        const known = owners.get(key);
        if (known === undefined || fdPid < known) owners.set(key, fdPid);
      }
    } else if (section === 'comm') {
      const match = /^(\d{1,9}) (.*)$/.exec(line);
      if (match !== null) comms.set(Number(match[1]), cleanName(match[2] ?? ''));
    }
  }
  const seen = new Set<string>();
  const ports: GuestPortInfo[] = [];
  for (const socket of sockets) {
    const pid = socket.inode === 0 ? undefined : owners.get(socket.inode);
    const key = `${socket.proto} ${socket.address} ${socket.port} ${pid ?? ''}`;
    if (seen.has(key)) continue;
    seen.add(key);
    ports.push({
      proto: socket.proto,
      bindAddress: socket.address,
      port: socket.port,
      process: pid === undefined ? null : (comms.get(pid) ?? null),
      pid: pid ?? null,
      hostAddress: reachableFromHost(socket.address, guestIp) ? `${guestIp}:${socket.port}` : null,
    });
  }
  return ports.sort((a, b) => a.proto.localeCompare(b.proto) || a.port - b.port || a.bindAddress.localeCompare(b.bindAddress));
}

/** A socket table line: `sl: local rem st … uid timeout inode …`, addresses as hex `ADDR:PORT`. */
function parseSocketLine(line: string, table: 'tcp' | 'tcp6' | 'udp' | 'udp6'): Socket | undefined {
  const fields = line.trim().split(/\s+/);
  if (fields.length < 10 || !/^\d+:$/.test(fields[0] ?? '')) return undefined;
  const v6 = table.endsWith('6');
  const local = parseEndpoint(fields[1] ?? '', v6);
  const remote = parseEndpoint(fields[2] ?? '', v6);
  const state = fields[3] ?? '';
  const inodeText = fields[9] ?? '';
  if (local === undefined || remote === undefined || !/^[0-9A-Fa-f]{2}$/.test(state) || !/^\d{1,12}$/.test(inodeText)) return undefined;
  const proto: Proto = table.startsWith('tcp') ? 'tcp' : 'udp';
  if (proto === 'tcp' && state.toUpperCase() !== TCP_LISTEN) return undefined;
  if (proto === 'udp' && !(remote.port === 0 && (remote.address === '0.0.0.0' || remote.address === '::'))) return undefined;
  if (local.port === 0) return undefined;
  return { proto, address: local.address, port: local.port, inode: Number(inodeText) };
}

/** `0100007F:1F90` → 127.0.0.1, 8080. The kernel prints each 32-bit word in host order (little-endian on x86_64). */
function parseEndpoint(text: string, v6: boolean): { address: string; port: number } | undefined {
  const match = (v6 ? /^([0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})$/ : /^([0-9A-Fa-f]{8}):([0-9A-Fa-f]{4})$/).exec(text);
  if (match === null) return undefined;
  const hex = match[1] ?? '';
  const bytes: number[] = [];
  for (let word = 0; word < hex.length; word += 8) {
    const value = parseInt(hex.slice(word, word + 8), 16);
    bytes.push(value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, value >>> 24);
  }
  return { address: v6 ? formatIpv6(bytes) : bytes.join('.'), port: parseInt(match[2] ?? '0', 16) };
}

/** RFC 5952 text: lower case, the longest run of two or more zero groups as `::`, IPv4-mapped as ::ffff:a.b.c.d. */
export function formatIpv6(bytes: readonly number[]): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${bytes.slice(12, 16).join('.')}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const text = groups.map((g) => g.toString(16));
  if (bestStart < 0) return text.join(':');
  return `${text.slice(0, bestStart).join(':')}::${text.slice(bestStart + bestLength).join(':')}`;
}

/** Bound to every address (0.0.0.0, ::) or to the guest's own: reachable at the guest's IP. Loopback and other addresses are not. */
function reachableFromHost(address: string, guestIp: string): boolean {
  return address === '0.0.0.0' || address === '::' || address === guestIp || address === `::ffff:${guestIp}`;
}

function cleanName(name: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is stripped
  return name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').slice(0, MAX_COMM_LENGTH);
}
