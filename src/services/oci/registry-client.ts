/**
 * A client for registries that speak the OCI distribution spec (registry API
 * v2: Docker Hub, ghcr.io, quay.io, `docker-registry`), reading only: it
 * resolves a reference to an image manifest and downloads blobs.
 *
 * Protocol flow for one image:
 *  1. `GET /v2/<repo>/manifests/<tag|digest>` with an `Accept` listing the
 *     media types banger reads (OCI index, Docker manifest list, OCI manifest,
 *     Docker schema2 manifest). The body is hashed: a pinned digest or a
 *     `Docker-Content-Digest` header that disagrees fails ERR_VERIFY_FAILED.
 *  2. When that is a list/index, the linux/amd64 entry is fetched by digest
 *     (step 1 again); no such entry fails ERR_NOT_FOUND naming the platforms.
 *  3. `GET /v2/<repo>/blobs/<digest>` for the config and each layer; registries
 *     often redirect to a CDN, which fetch follows (dropping Authorization on
 *     cross-origin hops). The body streams to a temp file while hashed and is
 *     renamed to `<cacheDir>/blobs/sha256/<hex>` only after the hash matched,
 *     so the cache never holds a partial or wrong blob; a cached blob is
 *     rehashed and reused without a request. Given the descriptor's size, a
 *     longer body is cut off. A transfer cut off part way keeps its bytes in
 *     `<cacheDir>/partial/<hex>` and the next fetch resumes with a ranged
 *     request (the whole is still verified). Two fetches of one blob at once
 *     in this process share one download.
 *  Authentication (auth.ts): requests go out with the cached token for
 *  `repository:<repo>:pull`, or none; a 401 is answered from its
 *  `WWW-Authenticate` challenge with a fresh token and the request is retried
 *  once; a second 401 fails ERR_REGISTRY_AUTH. Other statuses: 403
 *  ERR_REGISTRY_AUTH, 404 ERR_NOT_FOUND (telling a missing repository,
 *  `NAME_UNKNOWN` in the JSON error body, from a missing tag or blob), 429
 *  ERR_RATE_LIMITED (with Retry-After), anything else ERR_DOWNLOAD_FAILED.
 *  Every request runs under the response and stall deadlines of http.ts.
 *  Credentials: pass `credentials: dockerConfigLookup(config)` (docker-config.ts).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { hasVerifiedFile, writeResumableFile } from '../../host/verified-file.js';
import { BangerError } from '../../rpc/errors.js';
import { type CredentialLookup, parseWwwAuthenticate, RegistryAuth } from './auth.js';
import { Exchange, type Timeouts } from './http.js';
import { DEFAULT_ACCEPT, LINUX_AMD64, type Manifest, parseManifest, type Platform, selectPlatform } from './manifest.js';
import { formatReference, type ImageReference, manifestReference, registryBaseUrl } from './reference.js';

export interface RegistryClientOptions extends Timeouts {
  /** Registries (host or host:port) that may be spoken to over plain HTTP besides loopback ones. */
  insecure?: readonly string[] | undefined;
  /** Where credentials come from, e.g. `(r) => credentialsFromDockerConfig(config, r)`; anonymous when absent. */
  credentials?: CredentialLookup | undefined;
}

export interface RequestOptions {
  signal?: AbortSignal | undefined;
}

export interface ManifestResult {
  /** sha256 of the exact bytes received, `sha256:<hex>`. */
  digest: string;
  body: Buffer;
  manifest: Manifest;
}

export interface BlobProgress {
  digest: string;
  received: number;
  total: number | undefined;
}

export interface FetchBlobOptions extends RequestOptions {
  onProgress?: ((progress: BlobProgress) => void) | undefined;
  /** The descriptor's size: a body that runs past it is cut off (ERR_VERIFY_FAILED) instead of filling the disk. */
  size?: number | undefined;
}

const MANIFEST_LIMIT_BYTES = 4 * 1024 * 1024;
const ERROR_BODY_LIMIT_BYTES = 64 * 1024;
const PROGRESS_INTERVAL_BYTES = 1024 * 1024;
const DIGEST = /^sha256:([a-f0-9]{64})$/;

/** Blob downloads in progress in this process, by target path (a daemon is one process per user). */
const downloading = new Map<string, Promise<void>>();

export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #auth: RegistryAuth;

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#auth = new RegistryAuth({ credentials: options.credentials, responseTimeoutMs: options.responseTimeoutMs, stallTimeoutMs: options.stallTimeoutMs });
  }

  /** Fetches the manifest a reference names, as served (possibly a list/index). */
  async getManifest(ref: ImageReference, options: RequestOptions & { accept?: readonly string[] | undefined } = {}): Promise<ManifestResult> {
    const what = formatReference(ref);
    const exchange = await this.#open(
      ref,
      `manifests/${manifestReference(ref)}`,
      { accept: (options.accept ?? DEFAULT_ACCEPT).join(', ') },
      options.signal,
      what,
    );
    const body = await exchange.bytes(MANIFEST_LIMIT_BYTES);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    const claimed = exchange.response.headers.get('docker-content-digest');
    for (const expected of [ref.digest, claimed?.startsWith('sha256:') === true ? claimed : undefined]) {
      if (expected !== undefined && expected !== digest) {
        throw new BangerError('ERR_VERIFY_FAILED', `the manifest of ${what} has digest ${digest}, expected ${expected}`, {
          hint: 'the registry (or something between) altered the manifest; retry, and check any proxy',
        });
      }
    }
    return { digest, body, manifest: parseManifest(body, exchange.response.headers.get('content-type'), what) };
  }

  /** Resolves a reference to one image manifest, choosing `platform` (linux/amd64) from a list/index. */
  async getImageManifest(
    ref: ImageReference,
    options: RequestOptions & { platform?: Platform | undefined } = {},
  ): Promise<ManifestResult & { manifest: Extract<Manifest, { kind: 'image' }> }> {
    let result = await this.getManifest(ref, options);
    if (result.manifest.kind === 'index') {
      const entry = selectPlatform(result.manifest, formatReference(ref), options.platform ?? LINUX_AMD64);
      result = await this.getManifest({ ...ref, digest: entry.digest }, options);
    }
    const manifest = result.manifest;
    if (manifest.kind !== 'image') {
      throw new BangerError('ERR_DOWNLOAD_FAILED', `${formatReference(ref)}: a platform entry of the index is itself an index`, {
        hint: 'nested indexes are not supported',
      });
    }
    return { ...result, manifest };
  }

  /**
   * Returns the path `<cacheDir>/blobs/sha256/<hex>` of the blob `digest` of
   * `ref`, downloading it when it is not cached with the right content.
   */
  async fetchBlob(ref: ImageReference, digest: string, cacheDir: string, options: FetchBlobOptions = {}): Promise<string> {
    const hex = DIGEST.exec(digest)?.[1];
    if (hex === undefined) throw new BangerError('ERR_INVALID_ARGUMENT', `blob digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
    const dir = join(cacheDir, 'blobs', 'sha256');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const target = join(dir, hex);
    if (await hasVerifiedFile(target, hex)) return target;
    const what = `blob ${digest} of ${formatReference(ref)}`;
    // One download per blob at a time in this process (the partial file is shared by resumes).
    let running = downloading.get(target);
    if (running === undefined) {
      running = this.#download(ref, digest, hex, target, join(cacheDir, 'partial', hex), what, options).finally(() => downloading.delete(target));
      downloading.set(target, running);
    }
    await running;
    return target;
  }

  /**
   * Downloads a blob into `target` through `partial`, resuming a transfer an
   * earlier attempt left there with a ranged request (a registry that answers
   * 200 instead of 206 gets the whole blob written afresh).
   */
  async #download(ref: ImageReference, digest: string, hex: string, target: string, partial: string, what: string, options: FetchBlobOptions): Promise<void> {
    await writeResumableFile(
      target,
      hex,
      partial,
      async (kept, openSink, onChunk) => {
        if (options.size !== undefined && kept >= options.size) return; // all there: only the hash is left to check
        const exchange = await this.#open(ref, `blobs/${digest}`, kept > 0 ? { range: `bytes=${kept}-` } : {}, options.signal, what);
        const resumed = kept > 0 && exchange.response.status === 206;
        const length = exchange.response.headers.get('content-length');
        const total = options.size ?? (length === null ? undefined : Number(length) + (resumed ? kept : 0));
        let received = resumed ? kept : 0;
        let reported = received;
        await exchange.pipeBody(openSink(resumed ? 'kept' : 'start'), (chunk) => {
          onChunk(chunk);
          received += chunk.length;
          if (options.size !== undefined && received > options.size) {
            throw new BangerError('ERR_VERIFY_FAILED', `${what} is larger than its manifest says (${options.size} bytes)`, {
              hint: 'the registry served different content; the download was discarded, retry the pull',
            });
          }
          if (received - reported >= PROGRESS_INTERVAL_BYTES || received === total) {
            reported = received;
            options.onProgress?.({ digest, received, total });
          }
        });
      },
      (actual) =>
        new BangerError('ERR_VERIFY_FAILED', `${what} has sha256 ${actual}, expected ${hex}`, {
          hint: 'the registry (or something between) served different content; the download was discarded, retry the pull',
        }),
    ).catch((error: unknown) => {
      // Too long is not resumable: what was kept is wrong.
      if (error instanceof BangerError && error.code === 'ERR_VERIFY_FAILED') rmSync(partial, { force: true });
      throw error;
    });
  }

  /**
   * Opens a GET of `/v2/<repo>/<path>` with authentication (one retry after a
   * 401 with a fresh token) and returns it only when it succeeded; any other
   * outcome is thrown as the matching BangerError.
   */
  async #open(ref: ImageReference, path: string, headers: Record<string, string>, signal: AbortSignal | undefined, what: string): Promise<Exchange> {
    const url = `${registryBaseUrl(ref, this.#options.insecure)}/${ref.repository}/${path}`;
    const scope = `repository:${ref.repository}:pull`;
    let authorization = this.#auth.cached(ref.registry, scope);
    for (let attempt = 0; ; attempt++) {
      const exchange = await Exchange.open(url, {
        headers: authorization === undefined ? headers : { ...headers, authorization },
        signal,
        responseTimeoutMs: this.#options.responseTimeoutMs,
        stallTimeoutMs: this.#options.stallTimeoutMs,
      });
      const response = exchange.response;
      if (response.ok) return exchange;
      if (response.status !== 401) throw statusError(response, ref, what, await registryErrorCode(exchange));
      exchange.discard();
      const challenge = parseWwwAuthenticate(response.headers.get('www-authenticate') ?? '');
      if (attempt > 0 || challenge === undefined) {
        throw new BangerError(
          'ERR_REGISTRY_AUTH',
          challenge === undefined
            ? `${ref.registry} refused ${what} (401) without saying how to log in`
            : `${ref.registry} refused access to ${what}: bad or missing credentials`,
          { hint: `check the login for ${ref.registry} (\`docker login ${ref.registry}\`) and that ${ref.repository} exists` },
        );
      }
      authorization = await this.#auth.authorize(ref.registry, challenge, scope, signal);
    }
  }
}

/**
 * The first `errors[].code` of a registry's JSON error body (`NAME_UNKNOWN`,
 * `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`, `DENIED`, `TOOMANYREQUESTS`…), or
 * undefined when the body is absent or not that shape. Consumes the body.
 */
async function registryErrorCode(exchange: Exchange): Promise<string | undefined> {
  try {
    const body = JSON.parse((await exchange.bytes(ERROR_BODY_LIMIT_BYTES)).toString('utf8')) as { errors?: { code?: unknown }[] };
    const code = body.errors?.[0]?.code;
    return typeof code === 'string' ? code : undefined;
  } catch {
    exchange.discard();
    return undefined;
  }
}

function statusError(response: Response, ref: ImageReference, what: string, code: string | undefined): BangerError {
  switch (response.status) {
    case 403:
      return new BangerError('ERR_REGISTRY_AUTH', `${ref.registry} denied access to ${what} (403)`, {
        hint: `check that the login for ${ref.registry} may pull ${ref.repository}`,
      });
    case 404:
      if (code === 'NAME_UNKNOWN') {
        return new BangerError('ERR_NOT_FOUND', `${ref.registry} has no repository ${ref.repository}`, {
          hint: 'check the repository name; private repositories also answer this way without a login',
        });
      }
      return new BangerError('ERR_NOT_FOUND', `${what} not found on ${ref.registry}${code === undefined ? '' : ` (${code})`}`, {
        hint: 'check the repository name and tag; private repositories also answer 404 without a login',
      });
    case 429: {
      const retryAfter = response.headers.get('retry-after');
      return new BangerError(
        'ERR_RATE_LIMITED',
        `${ref.registry} is rate limiting pulls${retryAfter === null ? '' : `; retry after ${retryAfter}${/^\d+$/.test(retryAfter) ? ' s' : ''}`}`,
        {
          hint: ref.registry === 'docker.io' ? 'anonymous Docker Hub pulls are limited; log in (`docker login`) or wait' : 'wait and retry',
        },
      );
    }
    default:
      return new BangerError('ERR_DOWNLOAD_FAILED', `cannot fetch ${what}: HTTP ${response.status}`, { hint: 'retry; the registry may be having trouble' });
  }
}
