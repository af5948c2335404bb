import { createHash } from 'node:crypto';
import { chmodSync, createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

import { transfer, type DownloadOptions } from '../../host/download.js';
import { BangerError } from '../../rpc/errors.js';
import type { MiseRelease } from './catalog.js';
import { readTarIndex } from './tar-index.js';

/**
 * mise for images, from the npm registry: the package tarball the catalog
 * pins (URL + npm integrity), downloaded once into a content-addressed cache,
 * then only its executable taken out for the build to copy into the image.
 *
 * npm pins tarballs by sha512 (`dist.integrity`), while src/host's verified
 * downloads hash sha256; this module keeps the same contract for sha512: a
 * file is published in the cache only once its bytes hashed right, so the
 * cache never holds a partial or wrong tarball, and a cached one is hashed
 * again before every use.
 */

/** Where the executable sits in the package (npm tarballs put everything under `package/`). */
export const MISE_MEMBER = 'package/bin/mise';

/** The largest executable accepted (the 2026.9 binary is ~150 MB). */
export const MAX_MISE_BYTES = 200 * 1024 * 1024;

/** What the rest of the package may add to the unpacked tarball beyond the executable (README, LICENSE, mise.d…). */
const TAR_SLACK_BYTES = 16 * 1024 * 1024;

const PROGRESS_INTERVAL_BYTES = 1024 * 1024;
const NPM_HINT = 'check the network: the tarball comes from registry.npmjs.org';
const INTEGRITY = /^sha512-([A-Za-z0-9+/]{86}==)$/;

/**
 * The sha512 (hex) an npm `dist.integrity` string pins. Only the form npm
 * writes for published packages is accepted, exactly one `sha512-<base64>`:
 * anything else (another algorithm, several hashes, options) is refused
 * rather than guessed at.
 */
export function integritySha512(integrity: string): string {
  const base64 = INTEGRITY.exec(integrity)?.[1];
  if (base64 === undefined) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `not an npm sha512 integrity: ${JSON.stringify(integrity.slice(0, 120))}`, {
      hint: "expected npm's dist.integrity, `sha512-` and 88 characters of base64",
    });
  }
  return Buffer.from(base64, 'base64').toString('hex');
}

async function sha512File(path: string): Promise<string> {
  const hash = createHash('sha512');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Returns the path of the tarball with this integrity in `cacheDir`
 * (`sha512-<hex>`), downloading `url` first when it is absent or no longer
 * hashes right (then it is removed first). The download lands in a temp name
 * beside it and is renamed only once its sha512 matched: ERR_VERIFY_FAILED
 * otherwise, ERR_DOWNLOAD_FAILED when the transfer fails or stalls, the
 * caller's reason when cancelled; in every case nothing is left behind.
 * Only HTTPS URLs are fetched.
 */
export async function cachedNpmTarball(cacheDir: string, url: string, integrity: string, options: DownloadOptions = {}): Promise<string> {
  const sha512 = integritySha512(integrity);
  if (!url.startsWith('https://')) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `refusing to download ${url}: not an HTTPS URL`, {
      hint: 'npm tarballs are fetched from https://registry.npmjs.org',
    });
  }
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const target = join(cacheDir, `sha512-${sha512}`);
  if (await hasFileWithSha512(target, sha512)) return target;
  const partial = `${target}.partial-${process.pid}-${Date.now()}`;
  try {
    const hash = createHash('sha512');
    let reported = 0;
    await transfer(url, { ...options, hint: NPM_HINT }, createWriteStream(partial, { mode: 0o600 }), (chunk, received, total) => {
      hash.update(chunk);
      if (received - reported >= PROGRESS_INTERVAL_BYTES || received === total) {
        reported = received;
        options.onProgress?.({ url, received, total });
      }
    });
    const actual = hash.digest();
    if (actual.toString('hex') !== sha512) {
      throw new BangerError('ERR_VERIFY_FAILED', `${url} has integrity sha512-${actual.toString('base64')}, expected ${integrity}`, {
        hint: 'the registry served a different file than banger pins; try again, and report it to banger if it persists',
      });
    }
    renameSync(partial, target);
    return target;
  } finally {
    rmSync(partial, { force: true });
  }
}

/** Whether `path` holds a file with this sha512 (hex); one that does not match is removed. */
async function hasFileWithSha512(path: string, sha512: string): Promise<boolean> {
  try {
    statSync(path);
  } catch {
    return false;
  }
  if ((await sha512File(path)) === sha512) return true;
  rmSync(path, { force: true });
  return false;
}

export interface ExtractOptions {
  /** The largest executable accepted (default MAX_MISE_BYTES; tests pass less). */
  maxBytes?: number;
}

/**
 * Takes the mise executable (MISE_MEMBER) out of the npm tarball `tgz` into
 * `<workDir>/mise`, mode 0755 whatever the umask, and returns that path
 * (`workDir` must exist; the unpacked tar passes through it and is removed).
 * Anything odd about the package is refused with ERR_IMAGE_INVALID: no such
 * member or more than one, not a regular file, empty or larger than
 * `maxBytes` (and an unpacked tarball larger than that plus a little, before
 * it fills the disk), cut short, or not an ELF file.
 */
export async function extractMise(tgz: string, workDir: string, options: ExtractOptions = {}): Promise<string> {
  const maxBytes = options.maxBytes ?? MAX_MISE_BYTES;
  const tar = join(workDir, 'package.tar');
  const out = join(workDir, 'mise');
  const invalid = (what: string): BangerError =>
    new BangerError('ERR_IMAGE_INVALID', `the mise package ${tgz} ${what}`, {
      hint: "banger's pinned mise release is not what it expects; report it to banger",
    });
  try {
    const maxTar = maxBytes + TAR_SLACK_BYTES;
    let unpacked = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        unpacked += chunk.length;
        callback(unpacked > maxTar ? invalid(`unpacks to more than ${maxTar} bytes`) : null, chunk);
      },
    });
    await pipeline(createReadStream(tgz), createGunzip(), cap, createWriteStream(tar, { mode: 0o600 })).catch((error: unknown) => {
      // zlib's own errors (Z_DATA_ERROR…) mean a broken archive; anything else (a full disk) is not the package's fault.
      const zlib = error instanceof Error && 'code' in error && typeof error.code === 'string' && error.code.startsWith('Z_');
      throw zlib ? invalid(`cannot be unpacked: ${error.message}`) : error;
    });
    const members = await readTarIndex(tar).catch((error: unknown) => {
      throw invalid(`is not a readable tarball: ${error instanceof Error ? error.message : String(error)}`);
    });
    const found = members.filter((member) => member.name.replace(/^\.\//, '').replace(/\/+$/, '') === MISE_MEMBER);
    const [member] = found;
    if (member === undefined) throw invalid(`holds no ${MISE_MEMBER}`);
    if (found.length > 1) throw invalid(`holds ${MISE_MEMBER} ${found.length} times`);
    if (member.type !== 'file') throw invalid(`holds ${MISE_MEMBER} as a ${member.type}, not a regular file`);
    if (member.size === 0 || member.size > maxBytes) throw invalid(`holds a ${MISE_MEMBER} of ${member.size} bytes (at most ${maxBytes} accepted)`);
    if (member.dataOffset + member.size > statSync(tar).size) throw invalid(`is cut short inside ${MISE_MEMBER}`);
    const file = await open(tar, 'r');
    try {
      const magic = Buffer.alloc(4);
      await file.read(magic, 0, 4, member.dataOffset);
      if (!magic.equals(Buffer.from('\x7fELF', 'latin1'))) throw invalid(`holds a ${MISE_MEMBER} that is not an ELF executable`);
    } finally {
      await file.close();
    }
    await pipeline(createReadStream(tar, { start: member.dataOffset, end: member.dataOffset + member.size - 1 }), createWriteStream(out, { mode: 0o700 }));
    chmodSync(out, 0o755);
    return out;
  } catch (error) {
    rmSync(out, { force: true });
    throw error;
  } finally {
    rmSync(tar, { force: true });
  }
}

/**
 * The executable of `release`, as `<workDir>/mise`: the tarball from the
 * cache in `npmCache` (downloaded and verified when missing), then
 * extractMise. The caller owns `workDir` and removes it.
 */
export async function fetchMise(release: MiseRelease, npmCache: string, workDir: string, options: DownloadOptions & ExtractOptions = {}): Promise<string> {
  const tgz = await cachedNpmTarball(npmCache, release.tarball, release.integrity, options);
  return await extractMise(tgz, workDir, options);
}
