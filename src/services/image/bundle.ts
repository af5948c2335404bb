import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, createReadStream, createWriteStream, fchmodSync, fsyncSync, linkSync, openSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import { IMAGE_ROOTFS } from '../../config/filenames.js';
import { abortReason } from '../../host/command.js';
import { hostOf, transfer } from '../../host/download.js';
import { findExecutable } from '../../host/executables.js';
import { sha256File, writeVerifiedFile } from '../../host/verified-file.js';
import { BangerError, hasErrnoCode } from '../../rpc/errors.js';
import { KERNEL_NAME } from '../../rpc/schemas.js';
import { describeValue, hasControl } from '../../rpc/validation.js';
import type { ImageSpec } from '../../store/images-repo.js';
import { entryHeader } from '../../workspace/tar-writer.js';
import { cString, headerChecksumOk, numeric, parsePax } from './tar-index.js';

/**
 * Bundles: an artifact (an image's rootfs, a kernel's files) as one file to
 * hand on, a `.tar.zst`. The tar holds `manifest.json` first, then the named
 * regular files the manifest's kind calls for, nothing else; each kind says
 * which (image-bundle parts below, services/kernel/kernel-bundle.ts).
 *
 * A bundle's content is untrusted, whoever pinned its sha256: the sha256 says
 * only that it is the file its publisher meant. So it is never given to tar.
 * `zstd -dc` decompresses it into a pipe and the tar stream is read here,
 * header by header: only the expected names, only regular files (no links,
 * directories or devices, no absolute names or `..`), each once, the
 * manifest small; every file is created new (O_EXCL) in the target
 * directory under a name this code chose. Anything else is refused with
 * nothing left of what was written.
 */

/** The member every bundle starts with. */
export const BUNDLE_MANIFEST = 'manifest.json';
/** The largest manifest read (it is parsed in memory). */
export const MAX_MANIFEST_BYTES = 64 * 1024;
/** The manifest format version this banger writes and reads. */
export const BUNDLE_VERSION = 1;

/** How often (bytes) a long copy reports progress. */
const PROGRESS_INTERVAL_BYTES = 4 * 1024 * 1024;
const BLOCK = 512;

export interface BundleProgress {
  /** Bytes done so far, and in all when known. */
  onProgress?: ((done: number, total: number | undefined) => void) | undefined;
  signal: AbortSignal;
}

// ---------------------------------------------------------------------------
// Writing

/** A file to put in a bundle: its name there, and the file it is read from. */
export interface PackMember {
  name: string;
  path: string;
}

/** What writing a bundle produced. */
export interface WrittenBundle {
  path: string;
  sha256: string;
  sizeBytes: number;
}

/**
 * Writes the bundle `path`: `manifest` as manifest.json, then `members`,
 * through `zstd`. The file appears whole or not at all: it is written to a
 * temp file in the same directory, synced, and then linked into place (which
 * refuses a file that appeared meanwhile) or, with `force`, renamed over it.
 * Refused up front: a missing directory, an existing file without `force`,
 * a directory at `path`. Written as the user the daemon runs as, mode 0644
 * whatever the umask (the daemon's is 077): a bundle is meant to be handed on.
 */
export async function writeBundle(
  path: string,
  manifest: object,
  members: readonly PackMember[],
  options: BundleProgress & { force: boolean },
): Promise<WrittenBundle> {
  const dir = dirname(path);
  checkTarget(path, dir, options.force);
  const zstd = zstdBinary();
  const sources = members.map((member) => ({ ...member, size: regularFileSize(member.path) }));
  const total = sources.reduce((sum, member) => sum + member.size, 0);
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  const temp = join(dir, `.${basename(path)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  const hash = createHash('sha256');
  let sizeBytes = 0;
  try {
    const child = spawn(zstd, ['-q', '-c', '-T0', '-'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const exit = childExit(child);
    let out: Writable;
    try {
      out = createWriteStream(temp, { flags: 'wx', mode: 0o644 });
      await new Promise<void>((resolve, reject) => {
        out.once('open', (fd: number) => {
          fchmodSync(fd, 0o644); // not left to the umask (the daemon's is 077)
          resolve();
        });
        out.once('error', reject);
      });
    } catch (error) {
      child.kill('SIGKILL');
      throw fileError(dir, 'write', error);
    }
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        sizeBytes += chunk.length;
        done(null, chunk);
      },
    });
    const input = Readable.from(tarChunks(manifestBytes, sources, total, options.onProgress), { objectMode: false });
    try {
      await Promise.all([pipeline(input, child.stdin, { signal: options.signal }), pipeline(child.stdout, meter, out, { signal: options.signal })]);
    } catch (error) {
      child.kill('SIGKILL');
      const status = await exit;
      if (options.signal.aborted) throw abortReason(options.signal);
      if (error instanceof BangerError) throw error;
      if (status.code !== 0) throw zstdFailed('compress', status.stderr);
      throw fileError(dir, 'write', error);
    }
    const status = await exit;
    if (status.code !== 0) throw zstdFailed('compress', status.stderr);
    options.signal.throwIfAborted();
    syncFile(temp);
    publishFile(temp, path, options.force);
  } finally {
    rmSync(temp, { force: true });
  }
  return { path, sha256: hash.digest('hex'), sizeBytes };
}

function checkTarget(path: string, dir: string, force: boolean): void {
  let dirStats: Stats;
  try {
    dirStats = statSync(dir);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT') || hasErrnoCode(error, 'ENOTDIR')) {
      throw new BangerError('ERR_NOT_FOUND', `${dir} does not exist`, { hint: 'create the directory first, or write the bundle elsewhere' });
    }
    throw fileError(dir, 'read', error);
  }
  if (!dirStats.isDirectory()) throw new BangerError('ERR_INVALID_ARGUMENT', `${dir} is not a directory`, { hint: 'write the bundle into a directory' });
  let existing: Stats | undefined;
  try {
    existing = statSync(path);
  } catch {
    existing = undefined;
  }
  if (existing === undefined) return;
  if (!existing.isFile()) throw new BangerError('ERR_INVALID_ARGUMENT', `${path} exists and is not a regular file`, { hint: 'pick another file name' });
  if (!force) throw new BangerError('ERR_ALREADY_EXISTS', `${path} already exists`, { hint: 'pass --force to replace it, or pick another file name' });
}

/** Puts the finished temp file at `path`: never over a file unless `force`. */
function publishFile(temp: string, path: string, force: boolean): void {
  if (force) {
    renameSync(temp, path);
    return;
  }
  try {
    linkSync(temp, path); // fails with EEXIST rather than replacing: no check-then-rename race
  } catch (error) {
    if (hasErrnoCode(error, 'EEXIST')) {
      throw new BangerError('ERR_ALREADY_EXISTS', `${path} appeared while the bundle was being written`, { hint: 'pass --force to replace it' });
    }
    if (!hasErrnoCode(error, 'EPERM') && !hasErrnoCode(error, 'ENOTSUP') && !hasErrnoCode(error, 'EOPNOTSUPP')) throw fileError(dirname(path), 'write', error);
    // A filesystem without hard links: the check-then-rename is the best it allows.
    checkTarget(path, dirname(path), false);
    renameSync(temp, path);
  }
}

function syncFile(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function regularFileSize(path: string): number {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new BangerError('ERR_NOT_FOUND', `${path} is gone`, { hint: 'the artifact is missing its files; delete it and pull it again', cause: error });
  }
  if (!stats.isFile()) throw new BangerError('ERR_INVALID_ARGUMENT', `${path} is not a regular file`);
  return stats.size;
}

/** The tar stream: manifest, members (each read for exactly the size its header says), end-of-archive blocks. */
async function* tarChunks(
  manifest: Buffer,
  members: readonly (PackMember & { size: number })[],
  total: number,
  onProgress: BundleProgress['onProgress'],
): AsyncGenerator<Buffer> {
  // mtime 0 and fixed modes: the same files make the same tar.
  yield entryHeader({ name: BUNDLE_MANIFEST, mode: 0o644, mtime: 0, kind: { type: 'file', size: manifest.length } });
  yield manifest;
  yield padding(manifest.length);
  let done = 0;
  let reported = 0;
  onProgress?.(0, total);
  for (const member of members) {
    yield entryHeader({ name: member.name, mode: 0o644, mtime: 0, kind: { type: 'file', size: member.size } });
    let read = 0;
    if (member.size > 0) {
      for await (const chunk of createReadStream(member.path, { start: 0, end: member.size - 1, highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
        read += chunk.length;
        done += chunk.length;
        if (done - reported >= PROGRESS_INTERVAL_BYTES) {
          reported = done;
          onProgress?.(done, total);
        }
        yield chunk;
      }
    }
    if (read !== member.size) {
      throw new BangerError('ERR_IMAGE_INVALID', `${member.path} shrank while it was being written into the bundle`, {
        hint: 'nothing may write to it meanwhile',
      });
    }
    yield padding(member.size);
  }
  onProgress?.(done, total);
  yield Buffer.alloc(2 * BLOCK);
}

function padding(size: number): Buffer {
  const rest = size % BLOCK;
  return Buffer.alloc(rest === 0 ? 0 : BLOCK - rest);
}

// ---------------------------------------------------------------------------
// Reading

/** What a kind of bundle may hold besides its manifest. */
export interface BundleRules {
  /** What the bundle is called in messages: "image bundle". */
  label: string;
  /**
   * Checks the manifest as soon as it is read, before any other member is
   * written (a wrong kind or version fails before gigabytes are unpacked);
   * may do slow work first (resolve a kernel), the rest waits for it.
   */
  onManifest: (manifest: unknown) => Promise<void> | void;
  /**
   * Where member `name` goes, relative to the target directory (whose
   * subdirectories the caller made), or undefined when the bundle may not
   * hold it. Asked only after onManifest, with names that are relative and
   * free of `.`/`..` components.
   */
  target: (name: string) => string | undefined;
  /** The members (besides the manifest) that must be there, known once the manifest is read. */
  required: () => readonly string[];
  /** The size member `name` must have, when the manifest says (checked from its header, before anything is written). */
  size?: (name: string) => number | undefined;
}

export interface UnpackedBundle {
  manifest: unknown;
  /** Each member written (by its name in the bundle) and its size in bytes. */
  sizes: Map<string, number>;
}

/**
 * Unpacks the bundle `file` into `dir` under `rules` (see the module comment
 * for what is refused). On any failure the files it created are removed
 * again; a truncated or corrupt stream is ERR_IMAGE_INVALID as zstd reports
 * it. File data is written sparsely: runs of zeros (most of an ext4) become
 * holes.
 */
export async function unpackBundle(file: string, dir: string, rules: BundleRules, options: BundleProgress): Promise<UnpackedBundle> {
  const zstd = zstdBinary();
  options.signal.throwIfAborted();
  const child = spawn(zstd, ['-d', '-c', '-q', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exit = childExit(child);
  const created: string[] = [];
  // Destroying our end of the pipe too: a child's 'close' waits for its stdout, which would never end while unread.
  const stop = (): void => {
    child.stdout.destroy();
    child.kill('SIGKILL');
  };
  options.signal.addEventListener('abort', stop, { once: true });
  try {
    const reader = new StreamReader(child.stdout);
    let result: UnpackedBundle;
    try {
      result = await readMembers(reader, dir, rules, created, options);
      await reader.drain();
    } catch (error) {
      // Where zstd's output had ended (it exited by itself), a failure of zstd is the cause:
      // a truncated or corrupt frame. Otherwise what the stream held is at fault, and zstd is stopped.
      const ended = reader.ended;
      if (!ended) stop();
      const status = await exit;
      if (options.signal.aborted) throw abortReason(options.signal);
      if (ended && status.code !== 0) throw zstdFailed('decompress', status.stderr, rules.label);
      if (error instanceof TruncatedError) throw invalidBundle(rules.label, error.message);
      throw error;
    }
    const status = await exit;
    options.signal.throwIfAborted();
    if (status.code !== 0) throw zstdFailed('decompress', status.stderr, rules.label);
    return result;
  } catch (error) {
    for (const path of created) rmSync(path, { force: true });
    throw error;
  } finally {
    options.signal.removeEventListener('abort', stop);
  }
}

/** The tar stream ended in the middle of something. */
class TruncatedError extends Error {}

async function readMembers(reader: StreamReader, dir: string, rules: BundleRules, created: string[], options: BundleProgress): Promise<UnpackedBundle> {
  let manifest: unknown;
  let haveManifest = false;
  const sizes = new Map<string, number>();
  let pax: Record<string, string> = {};
  for (;;) {
    options.signal.throwIfAborted();
    const header = await reader.read(BLOCK);
    if (header.length === 0) break; // no end-of-archive blocks: tolerated, as GNU tar does
    if (header.length < BLOCK) throw new TruncatedError('the archive ends inside a header');
    if (header.every((byte) => byte === 0)) break;
    if (!headerChecksumOk(header)) throw invalidBundle(rules.label, 'it holds a corrupt tar header');
    const typeflag = String.fromCharCode(header[156] ?? 0);
    let size = numeric(header, 124, 12);
    if (!Number.isSafeInteger(size)) throw invalidBundle(rules.label, 'it holds a tar header with a malformed size');
    if (typeflag === 'x') {
      if (size > MAX_MANIFEST_BYTES) throw invalidBundle(rules.label, 'it holds an oversized pax header');
      const data = await reader.read(size);
      if (data.length < size) throw new TruncatedError('the archive ends inside a pax header');
      await skipPadding(reader, size);
      pax = { ...pax, ...paxRecordsOf(data, rules.label) };
      continue;
    }
    const prefix = header.subarray(257, 263).toString('latin1') === 'ustar\0' ? cString(header, 345, 155) : '';
    const base = cString(header, 0, 100);
    const name = pax.path ?? (prefix === '' ? base : `${prefix}/${base}`);
    if (pax.size !== undefined) size = Number(pax.size);
    const sparse = Object.keys(pax).some((key) => key.startsWith('GNU.sparse.'));
    pax = {};
    checkMemberName(name, typeflag, rules.label);
    if ((typeflag !== '0' && typeflag !== '\0') || sparse) {
      throw invalidBundle(rules.label, `its member ${describeValue(name)} is ${describeType(typeflag, sparse)}, not a regular file`);
    }
    if (name.split('/').some((part) => part === '.' || part === '')) throw invalidBundle(rules.label, `its member ${describeValue(name)} is not a plain name`);
    if (!Number.isSafeInteger(size) || size < 0) throw invalidBundle(rules.label, `its member ${describeValue(name)} has a malformed size`);
    if (!haveManifest) {
      if (name !== BUNDLE_MANIFEST) throw invalidBundle(rules.label, `it starts with ${describeValue(name)}, not ${BUNDLE_MANIFEST}`);
      if (size > MAX_MANIFEST_BYTES) throw invalidBundle(rules.label, `its ${BUNDLE_MANIFEST} is ${size} bytes (at most ${MAX_MANIFEST_BYTES})`);
      const data = await reader.read(size);
      if (data.length < size) throw new TruncatedError(`the archive ends inside ${BUNDLE_MANIFEST}`);
      await skipPadding(reader, size);
      try {
        manifest = JSON.parse(data.toString('utf8'));
      } catch {
        throw invalidBundle(rules.label, `its ${BUNDLE_MANIFEST} is not JSON`);
      }
      haveManifest = true;
      await rules.onManifest(manifest);
      continue;
    }
    if (name === BUNDLE_MANIFEST || sizes.has(name)) throw invalidBundle(rules.label, `it holds ${describeValue(name)} twice`);
    const target = rules.target(name);
    if (target === undefined) throw invalidBundle(rules.label, `it holds an unexpected member ${describeValue(name)}`, expectedHint(rules));
    const expected = rules.size?.(name);
    if (expected !== undefined && size !== expected) {
      throw invalidBundle(rules.label, `its ${describeValue(name)} is ${size} bytes, but its manifest says ${expected}`);
    }
    const path = join(dir, target);
    const file = await createNew(path);
    created.push(path);
    try {
      await copyOut(reader, file, size, options);
    } finally {
      await file.close();
    }
    await skipPadding(reader, size);
    sizes.set(name, size);
  }
  if (!haveManifest) throw invalidBundle(rules.label, `it is empty (no ${BUNDLE_MANIFEST})`);
  const missing = rules.required().filter((name) => !sizes.has(name));
  if (missing.length > 0) throw invalidBundle(rules.label, `it has no ${missing.join(', ')}`, expectedHint(rules));
  return { manifest, sizes };
}

function expectedHint(rules: BundleRules): string {
  return `a ${rules.label} holds exactly ${[BUNDLE_MANIFEST, ...rules.required()].join(', ')} (regular files, manifest first)`;
}

/**
 * Refuses what an unpacker could be led outside the target directory by (an
 * absolute name, a `..` component, a link): ERR_IMAGE_UNSAFE, told apart
 * from members that are merely not what the bundle should hold.
 */
function checkMemberName(name: string, typeflag: string, label: string): void {
  if (name.startsWith('/')) throw unsafe(label, `its member ${describeValue(name)} has an absolute name`);
  if (name.split('/').some((part) => part === '..')) throw unsafe(label, `its member ${describeValue(name)} has a ".." component`);
  if (typeflag === '1' || typeflag === '2') throw unsafe(label, `its member ${describeValue(name)} is a ${typeflag === '1' ? 'hard' : 'symbolic'} link`);
}

function describeType(typeflag: string, sparse: boolean): string {
  if (sparse) return 'a sparse file';
  const types: Record<string, string> = { '3': 'a character device', '4': 'a block device', '5': 'a directory', '6': 'a FIFO', '7': 'a contiguous file' };
  return types[typeflag] ?? `an entry of type ${describeValue(typeflag)}`;
}

async function createNew(path: string): Promise<FileHandle> {
  try {
    // O_EXCL: never an existing file, never through a symlink planted at the name.
    return await open(path, 'wx', 0o644);
  } catch (error) {
    throw fileError(dirname(path), 'write', error);
  }
}

const ZEROS = Buffer.alloc(256 * 1024);

/** Copies `size` bytes of the stream into `file`, leaving holes where the data is all zeros. */
async function copyOut(reader: StreamReader, file: FileHandle, size: number, options: BundleProgress): Promise<void> {
  let position = 0;
  let reported = 0;
  options.onProgress?.(0, size);
  const copied = await reader.pipe(size, async (chunk) => {
    if (!isZeros(chunk)) {
      let written = 0;
      while (written < chunk.length) written += (await file.write(chunk, written, chunk.length - written, position + written)).bytesWritten;
    }
    position += chunk.length;
    if (position - reported >= PROGRESS_INTERVAL_BYTES) {
      reported = position;
      options.onProgress?.(position, size);
      options.signal.throwIfAborted();
    }
  });
  if (copied < size) throw new TruncatedError('the archive ends inside a member');
  await file.truncate(size); // the length, whatever trailing holes
  options.onProgress?.(size, size);
}

function isZeros(chunk: Buffer): boolean {
  for (let at = 0; at < chunk.length; at += ZEROS.length) {
    const part = chunk.subarray(at, Math.min(chunk.length, at + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

async function skipPadding(reader: StreamReader, size: number): Promise<void> {
  const pad = padding(size).length;
  if (pad > 0 && (await reader.read(pad)).length < pad) throw new TruncatedError('the archive ends inside padding');
}

/** Exact-size reads over a byte stream. */
class StreamReader {
  readonly #chunks: AsyncIterator<Buffer, unknown>;
  #pending: Buffer = Buffer.alloc(0);
  #ended = false;

  constructor(stream: Readable) {
    this.#chunks = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  }

  /** Whether the stream has ended (its writer finished or died). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Reads and discards the rest (zstd must run to its end to check the whole frame; what follows the archive means nothing). */
  async drain(): Promise<void> {
    this.#pending = Buffer.alloc(0);
    while ((await this.#next()) !== undefined) {
      // discarded
    }
  }

  async #next(): Promise<Buffer | undefined> {
    if (this.#ended) return undefined;
    const next: IteratorResult<Buffer, unknown> = await this.#chunks.next();
    if (next.done === true) {
      this.#ended = true;
      return undefined;
    }
    return next.value;
  }

  /** The next `n` bytes (fewer only where the stream ends). */
  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    const got = await this.pipe(n, (chunk) => {
      parts.push(Buffer.from(chunk));
      return Promise.resolve();
    });
    return Buffer.concat(parts, got);
  }

  /** Hands the next `n` bytes to `sink` piece by piece, in order; returns how many there were. */
  async pipe(n: number, sink: (chunk: Buffer) => Promise<void>): Promise<number> {
    let left = n;
    while (left > 0) {
      let chunk = this.#pending;
      this.#pending = Buffer.alloc(0);
      if (chunk.length === 0) {
        const next = await this.#next();
        if (next === undefined) break;
        chunk = next;
      }
      if (chunk.length > left) {
        this.#pending = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.length;
      await sink(chunk);
    }
    return n - left;
  }
}

/** A pax header's records; a malformed one refuses the bundle. */
function paxRecordsOf(data: Buffer, label: string): Record<string, string> {
  try {
    return parsePax(data, label);
  } catch {
    throw invalidBundle(label, 'it holds a malformed pax header');
  }
}

// ---------------------------------------------------------------------------
// Fetching and checking the file

/**
 * Downloads `url` to `target`, which appears only once its bytes hashed to
 * `sha256` (writeVerifiedFile): a failed, cut-off or wrong download leaves
 * nothing. A server that sends no headers for DEFAULT_RESPONSE_TIMEOUT_MS or
 * no bytes for DEFAULT_STALL_TIMEOUT_MS fails the download (ERR_DOWNLOAD_FAILED).
 */
export async function downloadBundle(url: string, target: string, sha256: string, options: BundleProgress): Promise<void> {
  const hint = `check the URL and the network; ${hostOf(url)} must serve the bundle over http(s)`;
  await writeVerifiedFile(
    target,
    sha256,
    async (openSink, onChunk) => {
      let reported = 0;
      let last: { received: number; total: number | undefined } = { received: 0, total: undefined };
      await transfer(url, { signal: options.signal, hint }, openSink(), (chunk, received, total) => {
        onChunk(chunk);
        last = { received, total };
        if (received - reported >= PROGRESS_INTERVAL_BYTES) {
          reported = received;
          options.onProgress?.(received, total);
        }
      });
      options.onProgress?.(last.received, last.total);
    },
    (actual) =>
      new BangerError('ERR_VERIFY_FAILED', `${url} has sha256 ${actual}, expected ${sha256}`, {
        hint: 'the file there is not the bundle that sha256 names (changed, cut short or corrupt); nothing was kept',
      }),
  );
}

/** Refuses a bundle file that is not there, not a regular file, or (with `sha256`) not the file that sha256 names. */
export async function checkBundleFile(path: string, sha256: string | undefined): Promise<void> {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if (hasErrnoCode(error, 'ENOENT') || hasErrnoCode(error, 'ENOTDIR')) {
      throw new BangerError('ERR_NOT_FOUND', `${path} does not exist`, { hint: 'paths are read by the daemon; pass an absolute path' });
    }
    throw fileError(path, 'read', error);
  }
  if (!stats.isFile()) throw new BangerError('ERR_INVALID_ARGUMENT', `${path} is not a regular file`, { hint: 'pass the .tar.zst bundle file itself' });
  if (sha256 === undefined) return;
  let actual: string;
  try {
    actual = await sha256File(path);
  } catch (error) {
    throw fileError(path, 'read', error);
  }
  if (actual !== sha256) {
    throw new BangerError('ERR_VERIFY_FAILED', `${path} has sha256 ${actual}, expected ${sha256}`, {
      hint: 'this is not the bundle that sha256 names; nothing was kept',
    });
  }
}

// ---------------------------------------------------------------------------
// Shared pieces

function zstdBinary(): string {
  const zstd = findExecutable('zstd');
  if (zstd === undefined)
    throw new BangerError('ERR_HOST_TOOL_MISSING', 'zstd is not installed (bundles are zstd-compressed)', { hint: 'sudo apt-get install zstd' });
  return zstd;
}

interface ChildStatus {
  code: number | null;
  stderr: string;
}

/** How a child ends, with the tail of what it wrote to stderr; never rejects. */
function childExit(child: ChildProcess): Promise<ChildStatus> {
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  return new Promise((resolve) => {
    child.on('error', (error) => {
      stderr += error.message;
    });
    child.on('close', (code) => {
      resolve({ code, stderr: stderr.trim() });
    });
  });
}

function zstdFailed(verb: 'compress' | 'decompress', stderr: string, label?: string): BangerError {
  const detail = stderr.split('\n').pop() ?? '';
  if (verb === 'decompress') {
    return new BangerError('ERR_IMAGE_INVALID', `the ${label ?? 'bundle'} does not decompress: ${detail || 'zstd failed'}`, {
      hint: 'the file is truncated or not a zstd-compressed bundle; nothing was kept',
    });
  }
  return new BangerError('ERR_HOST_COMMAND_FAILED', `zstd failed to compress the bundle: ${detail || 'no message'}`, {
    hint: 'check the space left on the target',
  });
}

/** The bundle breaks the format. */
export function invalidBundle(label: string, what: string, hint?: string): BangerError {
  return new BangerError('ERR_IMAGE_INVALID', `the ${label} is not valid: ${what}`, { hint: hint ?? 'nothing of it was kept' });
}

function unsafe(label: string, what: string): BangerError {
  return new BangerError('ERR_IMAGE_UNSAFE', `the ${label} is refused: ${what}`, {
    hint: 'a bundle holds only plain files by plain names; nothing of it was kept',
  });
}

/** A filesystem failure on the user's side of a bundle (their directory or file), as a user error. */
function fileError(path: string, verb: 'read' | 'write', error: unknown): Error {
  if (error instanceof BangerError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return new BangerError('ERR_INVALID_ARGUMENT', `cannot ${verb} ${path}: ${code === 'EROFS' ? 'read-only filesystem' : 'permission denied'}`, {
      hint: `the daemon runs as you: pick a place you can ${verb}`,
      cause: error,
    });
  }
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new BangerError('ERR_HOST_CAPACITY', `no space left to ${verb} ${path}`, { hint: 'free some space and retry', cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

// ---------------------------------------------------------------------------
// Manifests

/** Every kind of bundle, by the `format` its manifest names, and how to pull one. */
const FORMATS: Readonly<Record<string, string>> = {
  'banger-image': 'an image bundle: pull it with `banger image pull`',
  'banger-kernel': 'a kernel bundle: pull it with `banger kernel pull`',
};

/**
 * The fields every manifest starts with, checked: `format` (which kind of
 * bundle) and `version` (of that format: a newer one is refused, since its
 * meaning is unknown here; fields this version does not know are ignored, so
 * additions that old readers may skip need no new version).
 */
export function manifestFields(value: unknown, format: string, label: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalidBundle(label, `its ${BUNDLE_MANIFEST} is not a JSON object`);
  const fields = value as Record<string, unknown>;
  if (fields.format !== format) {
    const other = typeof fields.format === 'string' ? FORMATS[fields.format] : undefined;
    if (other !== undefined)
      throw new BangerError('ERR_INVALID_ARGUMENT', `this is not ${label.startsWith('image') ? 'an' : 'a'} ${label}`, { hint: `it is ${other}` });
    throw invalidBundle(label, `its ${BUNDLE_MANIFEST} names format ${describeValue(fields.format)}, not "${format}"`);
  }
  if (typeof fields.version !== 'number' || !Number.isSafeInteger(fields.version) || fields.version < 1) {
    throw invalidBundle(label, `its ${BUNDLE_MANIFEST} has no valid version`);
  }
  if (fields.version > BUNDLE_VERSION) {
    throw new BangerError('ERR_IMAGE_INVALID', `the ${label} is format version ${fields.version}; this banger reads version ${BUNDLE_VERSION}`, {
      hint: 'upgrade banger to pull it',
    });
  }
  return fields;
}

/** A manifest's string field: text without control characters, at most `max` long. */
export function manifestString(fields: Record<string, unknown>, key: string, label: string, max = 256): string {
  const value = fields[key];
  if (typeof value !== 'string' || value.length === 0 || value.length > max || hasControl(value)) {
    throw invalidBundle(label, `its ${BUNDLE_MANIFEST} field "${key}" must be a string of 1 to ${max} characters without control characters`);
  }
  return value;
}

/** A manifest's optional string field (absent or null: null). */
export function optionalManifestString(fields: Record<string, unknown>, key: string, label: string, max = 256): string | null {
  return fields[key] === undefined || fields[key] === null ? null : manifestString(fields, key, label, max);
}

export const IMAGE_BUNDLE_FORMAT = 'banger-image';
const IMAGE_LABEL = 'image bundle';
/** The largest root filesystem a bundle may claim: ext4's largest file with 4 KiB blocks. */
const MAX_ROOTFS_BYTES = 16 * 1024 ** 4;

/**
 * manifest.json of an image bundle: what a VM needs of the image besides its
 * root filesystem. Written by `image export`, read by `image pull`.
 */
export interface ImageBundleManifest {
  format: typeof IMAGE_BUNDLE_FORMAT;
  version: number;
  /** The image's name where it was exported (a pull keeps it unless told another). */
  name: string;
  /** The kernel it boots with, by name (a catalog kernel is pulled when not here); null leaves it to `--kernel`. */
  kernel_ref: string | null;
  /** Size of rootfs.ext4 in bytes; the member must have exactly this size. */
  sizeBytes: number;
  /** Who answers SSH in the guest (see ImageSpec). */
  sshServer: 'image' | 'banger';
  /** Registry images: the reference and digest they came from and what `vm exec` applies. */
  oci?: NonNullable<ImageSpec['oci']>;
}

/** The manifest of an image as it is here. */
export function imageBundleManifest(name: string, kernelName: string | null, sizeBytes: number, spec: ImageSpec): ImageBundleManifest {
  return {
    format: IMAGE_BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    name,
    kernel_ref: kernelName,
    sizeBytes,
    sshServer: spec.sshServer ?? 'image',
    ...(spec.oci === undefined ? {} : { oci: spec.oci }),
  };
}

/** An image bundle's manifest, checked field by field (it is untrusted). */
export function parseImageManifest(value: unknown): ImageBundleManifest {
  const fields = manifestFields(value, IMAGE_BUNDLE_FORMAT, IMAGE_LABEL);
  const name = manifestString(fields, 'name', IMAGE_LABEL);
  const kernelRef = optionalManifestString(fields, 'kernel_ref', IMAGE_LABEL);
  if (kernelRef !== null && !KERNEL_NAME.check(kernelRef).ok)
    throw invalidBundle(IMAGE_LABEL, `its kernel_ref ${describeValue(kernelRef)} is not a kernel name`);
  const sizeBytes = fields.sizeBytes;
  if (typeof sizeBytes !== 'number' || !Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > MAX_ROOTFS_BYTES) {
    throw invalidBundle(IMAGE_LABEL, `its sizeBytes is not a byte count up to ${MAX_ROOTFS_BYTES}`);
  }
  const sshServer = fields.sshServer ?? 'image';
  if (sshServer !== 'image' && sshServer !== 'banger')
    throw invalidBundle(IMAGE_LABEL, `its sshServer ${describeValue(sshServer)} is neither "image" nor "banger"`);
  const oci = fields.oci === undefined || fields.oci === null ? undefined : parseOci(fields.oci);
  return {
    format: IMAGE_BUNDLE_FORMAT,
    version: fields.version as number,
    name,
    kernel_ref: kernelRef,
    sizeBytes,
    sshServer,
    ...(oci === undefined ? {} : { oci }),
  };
}

function parseOci(value: unknown): NonNullable<ImageSpec['oci']> {
  const bad = (what: string): BangerError => invalidBundle(IMAGE_LABEL, `its oci ${what}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('is not an object');
  const oci = value as Record<string, unknown>;
  const ref = manifestString(oci, 'ref', IMAGE_LABEL, 512);
  if (typeof oci.digest !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(oci.digest)) throw bad('digest is not sha256:<64 hex digits>');
  const run = oci.run;
  if (typeof run !== 'object' || run === null || Array.isArray(run)) throw bad('run is not an object');
  const { env, workingDir, user } = run as Record<string, unknown>;
  // What vm exec does with these is quoted for the guest shell (workspace/guest-scripts.ts); here only their shape is held to.
  if (!Array.isArray(env) || env.length > 4096 || !env.every((entry) => typeof entry === 'string' && entry.length <= 32_768 && !entry.includes('\0'))) {
    throw bad('run.env is not a list of strings');
  }
  if (workingDir !== null && (typeof workingDir !== 'string' || !workingDir.startsWith('/') || workingDir.length > 4095 || hasControl(workingDir))) {
    throw bad('run.workingDir is neither null nor an absolute path');
  }
  if (user !== null && (typeof user !== 'string' || !/^[A-Za-z0-9._-]{1,64}$/.test(user))) throw bad('run.user is neither null nor a user name');
  return { ref, digest: oci.digest, run: { env: env as string[], workingDir, user } };
}

/**
 * Unpacks an image bundle into `dir`: its rootfs.ext4 (of the size the
 * manifest says), and its manifest, checked, handed to `onManifest` before
 * the root filesystem is unpacked. Nothing is left in `dir` on failure.
 */
export async function unpackImageBundle(
  file: string,
  dir: string,
  options: BundleProgress & { onManifest?: (manifest: ImageBundleManifest) => Promise<void> | void },
): Promise<{ manifest: ImageBundleManifest; rootfs: string }> {
  let manifest: ImageBundleManifest | undefined;
  await unpackBundle(
    file,
    dir,
    {
      label: IMAGE_LABEL,
      onManifest: async (value) => {
        manifest = parseImageManifest(value);
        await options.onManifest?.(manifest);
      },
      target: (name) => (name === IMAGE_ROOTFS ? IMAGE_ROOTFS : undefined),
      required: () => [IMAGE_ROOTFS],
      size: (name) => (name === IMAGE_ROOTFS ? manifest?.sizeBytes : undefined),
    },
    options,
  );
  if (manifest === undefined) throw new Error('unpackBundle returned without reading the manifest');
  return { manifest, rootfs: join(dir, IMAGE_ROOTFS) };
}
