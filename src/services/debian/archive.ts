import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { cachedDownload, fetchBytes, type DownloadOptions } from '../../host/download.js';
import { BangerError } from '../../rpc/errors.js';
import { parseReleaseDate, parseStanzas, releaseFiles, type Stanza } from './control-file.js';
import { compareDebianVersions } from './version.js';

const run = promisify(execFile);

/**
 * A client for Debian archives that trusts what apt trusts: the suite's
 * InRelease must carry a valid signature from Debian's archive keyring
 * (checked with gpgv), and every file taken from the archive must match the
 * sha256 the signed index lists. Nothing is pinned by URL: versions roll (the
 * security suite drops old builds), so files are found through the index.
 */

export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

export interface ArchiveSource {
  /** Base URL of the archive, e.g. http://deb.debian.org/debian */
  base: string;
  suite: string;
  component: string;
}

export interface PackageRecord {
  source: ArchiveSource;
  name: string;
  version: string;
  filename: string;
  sha256: string;
  size: number;
  depends: string;
}

export interface ArchiveOptions extends DownloadOptions {
  cacheDir: string;
  keyring?: string;
  arch?: string;
  /** The current time, against which Valid-Until is checked (tests pin it). */
  now?: () => Date;
}

/** Fetches `dists/<suite>/InRelease` and returns its signed content, verified with gpgv. */
export async function fetchVerifiedRelease(source: ArchiveSource, options: ArchiveOptions): Promise<Stanza> {
  const url = `${source.base}/dists/${source.suite}/InRelease`;
  const signed = await fetchBytes(url, options);
  const dir = mkdtempSync(join(tmpdir(), 'banger-inrelease-'));
  try {
    const file = join(dir, 'InRelease');
    writeFileSync(file, signed);
    const verified = join(dir, 'Release');
    try {
      await run('gpgv', ['--keyring', options.keyring ?? DEBIAN_KEYRING, '--output', verified, file]);
    } catch (error) {
      const stderr = (error as { stderr?: string }).stderr ?? (error as Error).message;
      throw new BangerError('ERR_VERIFY_FAILED', `the signature of ${url} does not verify: ${stderr.trim().split('\n').at(-1) ?? ''}`, {
        cause: error,
        hint: `install gpgv and debian-archive-keyring, or check that ${source.base} is a genuine Debian mirror`,
      });
    }
    const [release] = parseStanzas(readFileSync(verified, 'utf8'));
    if (release === undefined) throw new BangerError('ERR_VERIFY_FAILED', `${url} has no Release fields`);
    assertNotExpired(release, url, (options.now ?? (() => new Date()))());
    return release;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Refuses a Release whose `Valid-Until` has passed, as apt does. A signature
 * never expires, so without this a mirror (or anyone on the plain-HTTP path)
 * could keep serving an old signed index and hide every later security fix.
 * The field is optional: the main archive omits it (its index is valid until
 * replaced), the security archive sets it about a week ahead. A field that is
 * present but unreadable is refused too, rather than read as "no limit".
 */
export function assertNotExpired(release: Stanza, url: string, now: Date): void {
  const validUntil = release.get('Valid-Until');
  if (validUntil === undefined) return;
  const until = parseReleaseDate(validUntil);
  if (until === undefined) {
    throw new BangerError('ERR_VERIFY_FAILED', `${url} has an unreadable Valid-Until: "${validUntil}"`, {
      hint: 'this is not a well-formed Debian index; check the mirror setting (kernel_mirror in config.toml)',
    });
  }
  if (until.getTime() >= now.getTime()) return;
  const date = release.get('Date');
  throw new BangerError(
    'ERR_VERIFY_FAILED',
    `${url}${date === undefined ? '' : ` (dated ${date})`} expired at ${validUntil}: the mirror serves an outdated copy of a signed index`,
    {
      hint: `the mirror is stale or replaying an old index; retry later or point kernel_mirror in config.toml at another mirror; if the host clock (now ${now.toUTCString()}) is wrong, fix it`,
    },
  );
}

/**
 * The binary Packages index of a suite, fetched (or taken from cache) and
 * checked against InRelease. Only stanzas whose package name passes `want`
 * are parsed: the main index is ~50 MB of text.
 */
export async function fetchPackages(source: ArchiveSource, options: ArchiveOptions, want: (name: string) => boolean): Promise<Stanza[]> {
  const release = await fetchVerifiedRelease(source, options);
  const arch = options.arch ?? 'amd64';
  const wanted = `${source.component}/binary-${arch}/Packages.xz`;
  const entry = releaseFiles(release).find((f) => f.path === wanted);
  if (entry === undefined) {
    throw new BangerError('ERR_DOWNLOAD_FAILED', `${source.base} ${source.suite} lists no ${wanted}`, {
      hint: 'check the mirror and suite',
    });
  }
  const path = await cachedDownload(options.cacheDir, `${source.base}/dists/${source.suite}/${wanted}`, entry.sha256, options);
  const { stdout } = await run('xz', ['-dc', path], { maxBuffer: 512 * 1024 * 1024, encoding: 'utf8' });
  const chunks = stdout.split('\n\n').filter((chunk) => {
    const match = /^Package: (\S+)/.exec(chunk);
    return match?.[1] !== undefined && want(match[1]);
  });
  return parseStanzas(chunks.join('\n\n'));
}

function toRecord(source: ArchiveSource, stanza: Stanza): PackageRecord | undefined {
  const name = stanza.get('Package');
  const version = stanza.get('Version');
  const filename = stanza.get('Filename');
  const sha256 = stanza.get('SHA256');
  const size = stanza.get('Size');
  if (name === undefined || version === undefined || filename === undefined || sha256 === undefined || size === undefined) return undefined;
  return { source, name, version, filename, sha256, size: Number(size), depends: stanza.get('Depends') ?? '' };
}

/** The highest version of `name` across the given sources' indexes. */
export function newestPackage(indexes: readonly { source: ArchiveSource; stanzas: readonly Stanza[] }[], name: string): PackageRecord | undefined {
  let best: PackageRecord | undefined;
  for (const { source, stanzas } of indexes) {
    for (const stanza of stanzas) {
      if (stanza.get('Package') !== name) continue;
      const record = toRecord(source, stanza);
      if (record !== undefined && (best === undefined || compareDebianVersions(record.version, best.version) > 0)) best = record;
    }
  }
  return best;
}

/** Exactly `name` at `version` in one source's index. */
export function exactPackage(source: ArchiveSource, stanzas: readonly Stanza[], name: string, version: string): PackageRecord | undefined {
  const stanza = stanzas.find((s) => s.get('Package') === name && s.get('Version') === version);
  return stanza === undefined ? undefined : toRecord(source, stanza);
}

/** Downloads a package file (or takes it from cache), verified against its index sha256. */
export function downloadPackage(record: PackageRecord, options: ArchiveOptions): Promise<string> {
  return cachedDownload(options.cacheDir, `${record.source.base}/${record.filename}`, record.sha256, options);
}
