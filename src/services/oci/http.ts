/**
 * One HTTP exchange with a registry, under the same two deadlines as
 * src/host/download.ts: a response deadline for the headers and a stall
 * deadline that every body chunk restarts. A slow but moving transfer never
 * trips them; a server that accepted the connection and went silent does.
 * Failures are BangerErrors: ERR_DOWNLOAD_FAILED for network trouble and
 * timeouts, the caller's abort reason (ERR_CANCELLED) when its signal fired.
 */
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

import { DEFAULT_RESPONSE_TIMEOUT_MS, DEFAULT_STALL_TIMEOUT_MS } from '../../host/download.js';
import { TransferWatchdog } from '../../host/transfer-watchdog.js';
import { BangerError } from '../../rpc/errors.js';

export interface Timeouts {
  /** Longest wait for response headers, in ms (default DEFAULT_RESPONSE_TIMEOUT_MS). */
  responseTimeoutMs?: number | undefined;
  /** Longest wait for the next body bytes, in ms (default DEFAULT_STALL_TIMEOUT_MS). */
  stallTimeoutMs?: number | undefined;
}

export interface ExchangeOptions extends Timeouts {
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

const NETWORK_HINT = 'check the network and that the registry is reachable';

export class Exchange {
  readonly url: string;
  readonly response: Response;
  readonly #watchdog: TransferWatchdog;
  readonly #stallMs: number;

  private constructor(url: string, response: Response, watchdog: TransferWatchdog, stallMs: number) {
    this.url = url;
    this.response = response;
    this.#watchdog = watchdog;
    this.#stallMs = stallMs;
  }

  /** Sends a GET and waits for the headers; the body is left for pipeBody, bytes or discard. */
  static async open(url: string, options: ExchangeOptions): Promise<Exchange> {
    const responseMs = options.responseTimeoutMs ?? DEFAULT_RESPONSE_TIMEOUT_MS;
    const watchdog = new TransferWatchdog(options.signal, { verb: 'fetch', hint: NETWORK_HINT });
    watchdog.arm(responseMs, () => timeoutError(url, `no response within ${seconds(responseMs)}`));
    try {
      const response = await fetch(url, { headers: options.headers ?? {}, signal: watchdog.signal, redirect: 'follow' });
      watchdog.disarm();
      return new Exchange(url, response, watchdog, options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
    } catch (error) {
      watchdog.disarm();
      throw watchdog.failure(url, error);
    }
  }

  /**
   * Streams the body into `sink`, calling `onChunk` for each piece; the stall
   * deadline applies. An error thrown by `onChunk` stops the transfer and is
   * what this rejects with.
   */
  async pipeBody(sink: Writable, onChunk: (chunk: Buffer) => void): Promise<void> {
    const body = this.response.body;
    if (body === null) {
      sink.end();
      return;
    }
    let received = 0;
    const watchdog = this.#watchdog;
    watchdog.arm(this.#stallMs, () => timeoutError(this.url, `the transfer stalled: no data for ${seconds(this.#stallMs)} after ${received} bytes`));
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        watchdog.touch();
        received += chunk.length;
        try {
          onChunk(chunk);
        } catch (error) {
          callback(error as Error);
          return;
        }
        callback(null, chunk);
      },
    });
    try {
      await pipeline(Readable.fromWeb(body as WebReadableStream<Uint8Array>), meter, sink, { signal: watchdog.signal });
    } catch (error) {
      throw watchdog.failure(this.url, error);
    } finally {
      watchdog.disarm();
    }
  }

  /** Reads the whole body into memory, refusing more than `limit` bytes (manifests, tokens). */
  async bytes(limit: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    const url = this.url;
    const collect = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        size += chunk.length;
        if (size > limit) {
          callback(
            new BangerError('ERR_DOWNLOAD_FAILED', `${url} sent more than ${limit} bytes`, {
              hint: 'the registry answered with something that is not a manifest',
            }),
          );
          return;
        }
        chunks.push(chunk);
        callback();
      },
    });
    await this.pipeBody(collect, () => undefined);
    return Buffer.concat(chunks);
  }

  /** Drops an unwanted body (an error response) so the connection is released. */
  discard(): void {
    this.response.body?.cancel().catch(() => undefined);
    this.#watchdog.disarm();
  }
}

function timeoutError(url: string, what: string): BangerError {
  return new BangerError('ERR_DOWNLOAD_FAILED', `cannot fetch ${url}: ${what}`, {
    hint: `the registry accepted the connection but stopped answering; retry, or ${NETWORK_HINT}`,
  });
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 1000)} s` : `${ms} ms`;
}
