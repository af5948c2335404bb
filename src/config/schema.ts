import { posix } from 'node:path';

import { parse, TomlError } from 'smol-toml';

import { BangerError } from '../rpc/errors.js';
import { DISK_SIZE_BYTES, IMAGE_NAME, MEMORY_MIB, VCPU } from '../rpc/schemas.js';
import { describeValue, hasControl, type Checked } from '../rpc/validation.js';

/**
 * config.toml: its shape, defaults and validation in one place. Every key is
 * known; anything else is an error naming the key, so a typo never silently
 * does nothing. docs/config.md documents each key.
 */

export type VmmChoice = 'auto' | 'qemu' | 'firecracker';

export interface FileSyncEntry {
  /** Absolute host path (`~/` already expanded). */
  host: string;
  /** Absolute guest path under /root (`~/` already mapped to /root/). */
  guest: string;
  /** File mode for single files; undefined means the default (0600). */
  mode?: number;
}

export interface VmDefaultsConfig {
  vcpu?: number;
  memoryMiB?: number;
  diskSizeBytes?: number;
}

export interface BangerConfig {
  defaultImage: string;
  vmm: VmmChoice;
  qemuBin?: string;
  firecrackerBin?: string;
  kernelMirror: string;
  vmDefaults: VmDefaultsConfig;
  network: NetworkSettings;
  fileSync: FileSyncEntry[];
  /** `[registries]`: registries (host or host:port) banger may reach over plain HTTP besides loopback ones. */
  insecureRegistries: string[];
  /** `stats_poll_interval`: how often the daemon samples each running VM (vm stats), in ms. */
  statsPollIntervalMs: number;
}

export const DEFAULT_IMAGE = 'debian-bookworm';
export const DEFAULT_VMM: VmmChoice = 'auto';
export const DEFAULT_BRIDGE = 'banger0';
export const DEFAULT_SUBNET = '172.30.0.0/24';
export const DEFAULT_DNS_PORT = 42069;
export const DEFAULT_TAP_POOL = 2;
export const DEFAULT_STATS_POLL_INTERVAL_MS = 5_000;
/** Sampling more often than this would cost a busy (TCG) guest more than it tells. */
export const MIN_STATS_POLL_INTERVAL_MS = 1_000;
export const MAX_STATS_POLL_INTERVAL_MS = 3_600_000;

/** `[network]`: the bridge and subnet VMs live on, the daemon's DNS port, and how many idle taps to keep ready. */
export interface NetworkSettings {
  bridge: string;
  subnet: string;
  /** UDP port of the daemon's DNS (loopback and the bridge address; guests reach it on port 53 by a redirect). */
  dnsPort: number;
  /** Idle taps kept ready so a create does not wait for the root helper. */
  tapPool: number;
}
export const DEFAULT_KERNEL_MIRROR = 'http://deb.debian.org/debian';
export const DEFAULT_FILE_SYNC_MODE = 0o600;

export function defaultConfig(): BangerConfig {
  return {
    defaultImage: DEFAULT_IMAGE,
    vmm: DEFAULT_VMM,
    kernelMirror: DEFAULT_KERNEL_MIRROR,
    vmDefaults: {},
    network: { bridge: DEFAULT_BRIDGE, subnet: DEFAULT_SUBNET, dnsPort: DEFAULT_DNS_PORT, tapPool: DEFAULT_TAP_POOL },
    fileSync: [],
    insecureRegistries: [],
    statsPollIntervalMs: DEFAULT_STATS_POLL_INTERVAL_MS,
  };
}

const BRIDGE_PATTERN = /^[a-zA-Z0-9_.-]{1,15}$/;
const MODE_PATTERN = /^[0-7]{3,4}$/;
/** Linux's PATH_MAX less the terminating NUL. */
const MAX_PATH_LENGTH = 4095;

/**
 * A validation failure at one key; turned into ERR_CONFIG_INVALID with the
 * file path. `key` is the dotted key (`vm_defaults.vcpu`, `file_sync[1].guest`)
 * the hint tells the user to fix.
 */
class Invalid extends Error {
  constructor(
    readonly key: string,
    detail: string,
    readonly unknownKey = false,
  ) {
    super(unknownKey ? detail : `${key}: ${detail}`);
  }
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** A value as messages show it: see describeValue (long strings are cut short); TOML says "table" and has dates. */
function describe(value: unknown): string {
  if (value instanceof Date) return String(value);
  if (isTable(value)) return 'a table';
  return describeValue(value);
}

/** The value a shared rule (src/rpc/schemas.ts) accepted, or an Invalid at `key` worded by the rule. */
function passed<T>(checked: Checked<T>, key: string): T {
  if (checked.ok) return checked.value;
  throw new Invalid(key, checked.problem.detail);
}

function rejectUnknown(table: Table, known: readonly string[], prefix: string): void {
  for (const key of Object.keys(table)) {
    if (!known.includes(key)) throw new Invalid(`${prefix}${key}`, `unknown key "${prefix}${key}"`, true);
  }
}

function str(table: Table, key: string, label: string): string | undefined {
  const value = table[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new Invalid(label, `expected a string, got ${describe(value)}`);
  return value;
}

function absolutePath(table: Table, key: string): string | undefined {
  const value = str(table, key, key);
  if (value === undefined) return undefined;
  if (!posix.isAbsolute(value)) throw new Invalid(key, `expected an absolute path, got ${describe(value)}`);
  checkPathText(value, key);
  return value;
}

/**
 * Parses and validates config.toml text. Pure: `path` only labels errors and
 * `home` (the host user's home directory) expands `~/` in file_sync hosts.
 * Every failure is an ERR_CONFIG_INVALID whose message is `<path>: <detail>`.
 */
export function parseConfig(text: string, source: { path: string; home: string }): BangerConfig {
  let raw: Table;
  try {
    raw = parse(text);
  } catch (error) {
    if (error instanceof TomlError) {
      const firstLine = error.message.split('\n')[0] ?? error.message;
      throw configError(
        source.path,
        `line ${error.line}, column ${error.column}: ${firstLine}`,
        `fix the TOML syntax at line ${error.line}; docs/config.md shows a complete example file`,
        error,
      );
    }
    throw error;
  }
  try {
    return validate(raw, source.home);
  } catch (error) {
    if (!(error instanceof Invalid)) throw error;
    const hint = error.unknownKey
      ? `remove "${error.key}" or correct its spelling; docs/config.md lists every key`
      : `fix ${error.key}; docs/config.md describes every key and its allowed values`;
    throw configError(source.path, error.message, `${hint} (\`banger doctor\` re-checks the file)`);
  }
}

function configError(path: string, detail: string, hint: string, cause?: unknown): BangerError {
  return new BangerError('ERR_CONFIG_INVALID', `${path}: ${detail}`, { cause, hint });
}

function validate(raw: Table, home: string): BangerConfig {
  rejectUnknown(
    raw,
    ['default_image', 'vmm', 'qemu_bin', 'firecracker_bin', 'kernel_mirror', 'stats_poll_interval', 'vm_defaults', 'network', 'file_sync', 'registries'],
    '',
  );
  const config = defaultConfig();

  const image = str(raw, 'default_image', 'default_image');
  if (image !== undefined) config.defaultImage = passed(IMAGE_NAME.check(image), 'default_image');

  const vmm = str(raw, 'vmm', 'vmm');
  if (vmm !== undefined) {
    if (vmm !== 'auto' && vmm !== 'qemu' && vmm !== 'firecracker') {
      throw new Invalid('vmm', `expected "auto", "qemu" or "firecracker", got ${describe(vmm)}`);
    }
    config.vmm = vmm;
  }

  const qemuBin = absolutePath(raw, 'qemu_bin');
  if (qemuBin !== undefined) config.qemuBin = qemuBin;
  const firecrackerBin = absolutePath(raw, 'firecracker_bin');
  if (firecrackerBin !== undefined) config.firecrackerBin = firecrackerBin;

  const mirror = str(raw, 'kernel_mirror', 'kernel_mirror');
  if (mirror !== undefined) {
    if (!isHttpUrl(mirror)) throw new Invalid('kernel_mirror', `expected an http(s) URL, got ${describe(mirror)}`);
    config.kernelMirror = mirror.replace(/\/+$/, '');
  }

  if (raw.stats_poll_interval !== undefined) config.statsPollIntervalMs = parseInterval(raw.stats_poll_interval, 'stats_poll_interval');
  if (raw.vm_defaults !== undefined) config.vmDefaults = validateVmDefaults(raw.vm_defaults);
  if (raw.network !== undefined) config.network = validateNetwork(raw.network);
  if (raw.registries !== undefined) config.insecureRegistries = validateRegistries(raw.registries);
  if (raw.file_sync !== undefined) {
    if (!Array.isArray(raw.file_sync)) throw new Invalid('file_sync', 'expected an array of tables ([[file_sync]])');
    config.fileSync = raw.file_sync.map((entry, index) => validateFileSync(entry, index, home));
  }
  return config;
}

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration string (`"5s"`, `"1500ms"`, `"2m"`) between the stats interval's floor and ceiling, in ms. */
function parseInterval(value: unknown, key: string): number {
  const expected = `expected a duration from 1s to 1h like "5s" or "1500ms"`;
  const match = typeof value === 'string' ? /^(\d{1,7})(ms|s|m|h)$/.exec(value) : null;
  if (match === null) throw new Invalid(key, `${expected}, got ${describe(value)}`);
  const ms = Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? ''] ?? Number.NaN);
  if (!(ms >= MIN_STATS_POLL_INTERVAL_MS && ms <= MAX_STATS_POLL_INTERVAL_MS)) throw new Invalid(key, `${expected}, got ${describe(value)}`);
  return ms;
}

function validateVmDefaults(value: unknown): VmDefaultsConfig {
  if (!isTable(value)) throw new Invalid('vm_defaults', `expected a table, got ${describe(value)}`);
  rejectUnknown(value, ['vcpu', 'memory', 'disk_size'], 'vm_defaults.');
  const result: VmDefaultsConfig = {};
  const { vcpu, memory, disk_size: diskSize } = value;
  if (vcpu !== undefined) result.vcpu = passed(VCPU.check(vcpu), 'vm_defaults.vcpu');
  // An integer is MiB; a string is MiB or a size ("2G"), as on the command line.
  if (memory !== undefined) result.memoryMiB = passed(typeof memory === 'string' ? MEMORY_MIB.parse(memory) : MEMORY_MIB.check(memory), 'vm_defaults.memory');
  if (diskSize !== undefined) {
    if (typeof diskSize === 'number') {
      throw new Invalid('vm_defaults.disk_size', `expected a size string with a unit like "8G" (a bare number is not allowed), got ${describe(diskSize)}`);
    }
    if (typeof diskSize !== 'string') {
      throw new Invalid('vm_defaults.disk_size', `expected a size string with a unit like "8G", got ${describe(diskSize)}`);
    }
    result.diskSizeBytes = passed(DISK_SIZE_BYTES.parse(diskSize), 'vm_defaults.disk_size');
  }
  return result;
}

function validateNetwork(value: unknown): BangerConfig['network'] {
  if (!isTable(value)) throw new Invalid('network', `expected a table, got ${describe(value)}`);
  rejectUnknown(value, ['bridge', 'subnet', 'dns_port', 'tap_pool'], 'network.');
  const bridge = str(value, 'bridge', 'network.bridge') ?? DEFAULT_BRIDGE;
  if (!BRIDGE_PATTERN.test(bridge)) {
    throw new Invalid('network.bridge', `expected an interface name of 1-15 letters, digits, "_", "." or "-", got ${describe(bridge)}`);
  }
  const subnet = str(value, 'subnet', 'network.subnet') ?? DEFAULT_SUBNET;
  const problem = subnetProblem(subnet);
  if (problem !== undefined) throw new Invalid('network.subnet', `${describe(subnet)} ${problem}`);
  const dnsPort = value.dns_port ?? DEFAULT_DNS_PORT;
  if (typeof dnsPort !== 'number' || !Number.isInteger(dnsPort) || dnsPort < 1024 || dnsPort > 65_535) {
    throw new Invalid('network.dns_port', `expected an unprivileged port (1024-65535), got ${describe(dnsPort)}`);
  }
  const tapPool = value.tap_pool ?? DEFAULT_TAP_POOL;
  if (typeof tapPool !== 'number' || !Number.isInteger(tapPool) || tapPool < 0 || tapPool > 32) {
    throw new Invalid('network.tap_pool', `expected an integer between 0 and 32, got ${describe(tapPool)}`);
  }
  return { bridge, subnet, dnsPort, tapPool };
}

/** A registry as references name it: a host name or [IPv6], and an optional port. */
const REGISTRY_HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

function validateRegistries(value: unknown): string[] {
  if (!isTable(value)) throw new Invalid('registries', `expected a table, got ${describe(value)}`);
  rejectUnknown(value, ['insecure'], 'registries.');
  const insecure = value.insecure ?? [];
  if (!Array.isArray(insecure)) throw new Invalid('registries.insecure', `expected an array of registry hosts, got ${describe(insecure)}`);
  return insecure.map((entry, index) => {
    if (typeof entry !== 'string' || !REGISTRY_HOST.test(entry)) {
      throw new Invalid(`registries.insecure[${index}]`, `expected a registry host like "registry.lan:5000", got ${describe(entry)}`);
    }
    return entry;
  });
}

/** Why a subnet is unusable for guests, or undefined when it is fine. */
function subnetProblem(subnet: string): string | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(subnet);
  if (match === null) return 'is not an IPv4 CIDR like "172.30.0.0/24"';
  const octets = match.slice(1, 5).map(Number);
  const prefix = Number(match[5]);
  if (octets.some((o) => o > 255)) return 'is not an IPv4 CIDR like "172.30.0.0/24"';
  if (prefix < 16 || prefix > 29) return 'must have a prefix between /16 and /29';
  const [a = 0, b = 0, c = 0, d = 0] = octets;
  const address = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
  const hostMask = prefix === 32 ? 0 : (2 ** (32 - prefix) - 1) >>> 0;
  if ((address & hostMask) !== 0) return 'has host bits set (use the network address)';
  const isPrivate = a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
  if (!isPrivate) return 'must be in a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)';
  return undefined;
}

function isHttpUrl(text: string): boolean {
  if (/\s/.test(text)) return false;
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '' && url.search === '' && url.hash === '';
  } catch {
    return false;
  }
}

/** A path is text a file system takes: not empty, no control characters (a NUL would cut it short in any C call), not beyond PATH_MAX. */
function checkPathText(path: string, key: string): void {
  if (path === '') throw new Invalid(key, 'must not be empty');
  if (hasControl(path)) throw new Invalid(key, `must not contain control characters, got ${describe(path)}`);
  if (path.length > MAX_PATH_LENGTH) throw new Invalid(key, `must be at most ${MAX_PATH_LENGTH} characters, got ${describe(path)}`);
}

function hasDotDot(path: string): boolean {
  return path.split('/').includes('..');
}

function validateFileSync(value: unknown, index: number, home: string): FileSyncEntry {
  const label = `file_sync[${index}]`;
  if (!isTable(value)) throw new Invalid(label, `expected a table, got ${describe(value)}`);
  rejectUnknown(value, ['host', 'guest', 'mode'], `${label}.`);

  const host = str(value, 'host', `${label}.host`);
  if (host === undefined) throw new Invalid(`${label}.host`, 'is required');
  checkPathText(host, `${label}.host`);
  if (/^~[^/]/.test(host)) throw new Invalid(`${label}.host`, '~user paths are not supported, use ~/ or an absolute path');
  if (!host.startsWith('~/') && !host.startsWith('/')) throw new Invalid(`${label}.host`, 'must be absolute or start with ~/');
  if (hasDotDot(host)) throw new Invalid(`${label}.host`, 'must not contain ".."');
  if (host === '~/' || host === '/') throw new Invalid(`${label}.host`, `must name a file or directory, not ${describe(host)}`);

  const guest = str(value, 'guest', `${label}.guest`);
  if (guest === undefined) throw new Invalid(`${label}.guest`, 'is required');
  checkPathText(guest, `${label}.guest`);
  if (/^~[^/]/.test(guest)) throw new Invalid(`${label}.guest`, '~user paths are not supported, use ~/ or /root/');
  if (hasDotDot(guest)) throw new Invalid(`${label}.guest`, 'must not contain ".."');
  const guestPath = guest.startsWith('~/') ? '/root/' + guest.slice(2) : guest;
  const normalizedGuest = posix.normalize(guestPath).replace(/\/+$/, '');
  if (!normalizedGuest.startsWith('/root/') || normalizedGuest === '/root') {
    throw new Invalid(`${label}.guest`, 'must be under ~/ or /root/');
  }

  const entry: FileSyncEntry = {
    host: posix.normalize(host.startsWith('~/') ? posix.join(home, host.slice(2)) : host).replace(/\/+$/, ''),
    guest: normalizedGuest,
  };
  const mode = value.mode;
  if (mode !== undefined) {
    if (typeof mode !== 'string' || !MODE_PATTERN.test(mode)) {
      throw new Invalid(`${label}.mode`, `expected an octal string like "0600", got ${describe(mode)}`);
    }
    entry.mode = parseInt(mode, 8);
  }
  return entry;
}
