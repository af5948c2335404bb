import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { BangerError } from '../rpc/errors.js';

export interface DownloadProgress {
  url: string;
  received: number;
  total: number | undefined;
}

export interface DownloadOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
}

const PROGRESS_INTERVAL_BYTES = 1024 * 1024;

/** GETs a URL into memory (small files: release and index files). */
export async function fetchBytes(url: string, options: DownloadOptions = {}): Promise<Buffer> {
  const response = await get(url, options.signal);
  return Buffer.from(await response.arrayBuffer());
}

async function get(url: string, signal: AbortSignal | undefined): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, signal === undefined ? {} : { signal });
  } catch (error) {
    if (signal?.aborted === true) throw signal.reason;
    throw new BangerError('ERR_DOWNLOAD_FAILED', `cannot download ${url}: ${(error as Error).message}`, {
      cause: error,
      hint: 'check the network and the mirror setting (kernel_mirror in config.toml)',
    });
  }
  if (!response.ok || response.body === null) {
    throw new BangerError('ERR_DOWNLOAD_FAILED', `cannot download ${url}: HTTP ${response.status}`, {
      hint:
        response.status === 404 ? 'the mirror no longer has this file; pull again to resolve the current version' : 'check the mirror setting (kernel_mirror)',
    });
  }
  return response;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/**
 * Returns the path of a file with this sha256 in `cacheDir`, downloading it
 * first when absent. The download lands in a temp name and is renamed only
 * after its hash matched, so the cache never holds a partial or wrong file.
 */
export async function cachedDownload(cacheDir: string, url: string, sha256: string, options: DownloadOptions = {}): Promise<string> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const target = join(cacheDir, `sha256-${sha256}`);
  try {
    statSync(target);
    if ((await sha256File(target)) === sha256) return target;
    rmSync(target, { force: true });
  } catch {
    // not cached yet
  }
  const partial = `${target}.partial-${process.pid}-${Date.now()}`;
  try {
    const response = await get(url, options.signal);
    const lengthHeader = response.headers.get('content-length');
    const total = lengthHeader === null ? undefined : Number(lengthHeader);
    const hash = createHash('sha256');
    let received = 0;
    let reported = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        hash.update(chunk);
        received += chunk.length;
        if (received - reported >= PROGRESS_INTERVAL_BYTES || received === total) {
          reported = received;
          options.onProgress?.({ url, received, total });
        }
        callback(null, chunk);
      },
    });
    const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
    await pipeline(body, meter, createWriteStream(partial, { mode: 0o600 }), options.signal === undefined ? {} : { signal: options.signal });
    const actual = hash.digest('hex');
    if (actual !== sha256) {
      throw new BangerError('ERR_VERIFY_FAILED', `${url} has sha256 ${actual}, expected ${sha256}`, {
        hint: 'the mirror served a different file than its signed index lists; try again or use another mirror',
      });
    }
    renameSync(partial, target);
    return target;
  } finally {
    rmSync(partial, { force: true });
  }
}
