import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { BangerError } from '../rpc/errors.js';
import { TransferWatchdog } from './transfer-watchdog.js';
import { hasVerifiedFile, writeVerifiedFile } from './verified-file.js';

export interface DownloadProgress {
  url: string;
  received: number;
  total: number | undefined;
}

export interface DownloadOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
  /** Longest wait for the response headers, in ms (default DEFAULT_RESPONSE_TIMEOUT_MS). */
  responseTimeoutMs?: number | undefined;
  /** Longest wait for the next bytes of the body, in ms (default DEFAULT_STALL_TIMEOUT_MS). */
  stallTimeoutMs?: number | undefined;
  /** What to tell the user on failure (default: check the network and kernel_mirror). */
  hint?: string | undefined;
}

/**
 * Generous on purpose: these catch a mirror that accepted the connection and
 * then went silent, which would otherwise hang a pull forever. A slow but
 * moving transfer never trips them.
 */
export const DEFAULT_RESPONSE_TIMEOUT_MS = 30_000;
export const DEFAULT_STALL_TIMEOUT_MS = 60_000;

const PROGRESS_INTERVAL_BYTES = 1024 * 1024;
const MIRROR_HINT = 'check the network and the mirror setting (kernel_mirror in config.toml)';

/** GETs a URL into memory (small files: release and index files). */
export async function fetchBytes(url: string, options: DownloadOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const collect = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  await transfer(url, options, collect, () => undefined);
  return Buffer.concat(chunks);
}

/**
 * Returns the path of a file with this sha256 in `cacheDir`, downloading it
 * first when absent. The download lands in a temp name and is renamed only
 * after its hash matched, so the cache never holds a partial or wrong file,
 * whether the transfer failed, timed out, was cancelled or was corrupt.
 */
export async function cachedDownload(cacheDir: string, url: string, sha256: string, options: DownloadOptions = {}): Promise<string> {
  mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const target = join(cacheDir, `sha256-${sha256}`);
  if (await hasVerifiedFile(target, sha256)) return target;
  await writeVerifiedFile(
    target,
    sha256,
    async (openSink, onChunk) => {
      let reported = 0;
      await transfer(url, options, openSink(), (chunk, received, total) => {
        onChunk(chunk);
        if (received - reported >= PROGRESS_INTERVAL_BYTES || received === total) {
          reported = received;
          options.onProgress?.({ url, received, total });
        }
      });
    },
    (actual) =>
      new BangerError('ERR_VERIFY_FAILED', `${url} has sha256 ${actual}, expected ${sha256}`, {
        hint: 'the mirror served a different file than its signed index lists; try again or use another mirror',
      }),
  );
  return target;
}

/**
 * GETs `url` into `sink`, calling `onChunk` for every piece of the body.
 * Fails with ERR_DOWNLOAD_FAILED when the server sends no headers within the
 * response timeout or no body bytes within the stall timeout, and with the
 * caller's reason when its signal aborts.
 */
export async function transfer(
  url: string,
  options: DownloadOptions,
  sink: Writable,
  onChunk: (chunk: Buffer, received: number, total: number | undefined) => void,
): Promise<void> {
  const responseMs = options.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS;
  const stallMs = options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
  const hint = options.hint ?? MIRROR_HINT;
  const watchdog = new TransferWatchdog(options.signal, { verb: 'download', hint });
  let received = 0;
  try {
    watchdog.arm(responseMs, () => timeoutError(url, `no response within ${seconds(responseMs)}`, hint));
    const response = await fetch(url, { signal: watchdog.signal });
    if (!response.ok || response.body === null) {
      response.body?.cancel().catch(() => undefined);
      throw new BangerError('ERR_DOWNLOAD_FAILED', `cannot download ${url}: HTTP ${response.status}`, {
        hint: response.status === 404 && options.hint === undefined ? 'the mirror no longer has this file; pull again to resolve the current version' : hint,
      });
    }
    const lengthHeader = response.headers.get('content-length');
    const total = lengthHeader === null ? undefined : Number(lengthHeader);
    watchdog.arm(stallMs, () => timeoutError(url, `the transfer stalled: no data for ${seconds(stallMs)} after ${received} bytes`, hint));
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        watchdog.touch();
        received += chunk.length;
        onChunk(chunk, received, total);
        callback(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(response.body as WebReadableStream<Uint8Array>), meter, sink, { signal: watchdog.signal });
  } catch (error) {
    throw watchdog.failure(url, error);
  } finally {
    watchdog.disarm();
  }
}

function timeoutError(url: string, what: string, hint: string): BangerError {
  return new BangerError('ERR_DOWNLOAD_FAILED', `cannot download ${url}: ${what}`, {
    hint: `${hostOf(url)} accepted the connection but stopped answering; retry the pull, or ${hint}`,
  });
}

export function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}
