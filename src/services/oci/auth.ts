/**
 * Registry authentication, as the distribution spec and Docker Hub do it:
 * a request without credentials gets 401 with a `WWW-Authenticate` challenge;
 * for `Bearer` the client asks the challenge's realm for a token for a scope
 * (`repository:<name>:pull`), anonymously or with basic credentials, and
 * repeats the request with `Authorization: Bearer <token>`; for `Basic` it
 * sends the credentials themselves.
 *
 * Credentials come from a docker config.json object (`auths.<host>.auth`,
 * base64 `user:pass`, or `username`/`password`). `credsStore` and
 * `credHelpers` (docker-credential-* programs) are handled by docker-config.ts.
 * TODO: `identitytoken` (OAuth2 refresh tokens) is not supported yet and
 * counts as no credentials.
 */
import { BangerError } from '../../rpc/errors.js';
import { Exchange, type Timeouts } from './http.js';
import { DOCKER_HUB } from './reference.js';

export type Challenge = { scheme: 'bearer'; realm: string; service: string | undefined; scope: string | undefined } | { scheme: 'basic' };

export interface Credentials {
  username: string;
  password: string;
}

/**
 * Finds the credentials for a registry (as named in references) or undefined
 * for anonymous access; asked only when a registry challenges a request.
 */
export type CredentialLookup = (registry: string) => Credentials | undefined | Promise<Credentials | undefined>;

const TOKEN_LIMIT_BYTES = 1024 * 1024;
/** Tokens without `expires_in` last 60 s per the token spec; renew a little early. */
const DEFAULT_TOKEN_SECONDS = 60;
const EXPIRY_MARGIN_MS = 5_000;

/**
 * Parses a `WWW-Authenticate` header into the first challenge banger can
 * answer, or undefined. Parameter values may be quoted and then contain
 * commas (`scope="repository:a:pull,push"`).
 */
export function parseWwwAuthenticate(header: string): Challenge | undefined {
  const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (match === null) return undefined;
  const scheme = (match[1] ?? '').toLowerCase();
  if (scheme === 'basic') return { scheme: 'basic' };
  if (scheme !== 'bearer') return undefined;
  const params = new Map<string, string>();
  const param = /\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/gy;
  let found: RegExpExecArray | null;
  while ((found = param.exec(match[2] ?? '')) !== null && found[0] !== '') {
    params.set((found[1] ?? '').toLowerCase(), found[2] === undefined ? (found[3] ?? '') : found[2].replace(/\\(.)/g, '$1'));
  }
  const realm = params.get('realm');
  if (realm === undefined || realm === '') return undefined;
  return { scheme: 'bearer', realm, service: params.get('service'), scope: params.get('scope') };
}

/** The registry a docker config `auths` key names: keys may be URLs (`https://index.docker.io/v1/`). */
function configKeyRegistry(key: string): string {
  const host = key
    .replace(/^[a-z]+:\/\//i, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
  return host === 'index.docker.io' || host === 'registry-1.docker.io' ? DOCKER_HUB : host;
}

/** Credentials for `registry` from a parsed docker config.json, or undefined when it has none usable. */
export function credentialsFromDockerConfig(config: unknown, registry: string): Credentials | undefined {
  if (typeof config !== 'object' || config === null) return undefined;
  const auths = (config as { auths?: unknown }).auths;
  if (typeof auths !== 'object' || auths === null) return undefined;
  const wanted = registry.toLowerCase();
  for (const [key, entry] of Object.entries(auths as Record<string, unknown>)) {
    if (configKeyRegistry(key) !== wanted || typeof entry !== 'object' || entry === null) continue;
    const { auth, username, password } = entry as { auth?: unknown; username?: unknown; password?: unknown };
    if (typeof auth === 'string' && auth !== '') {
      const decoded = Buffer.from(auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon > 0) return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
    }
    if (typeof username === 'string' && typeof password === 'string' && username !== '') return { username, password };
  }
  return undefined;
}

function basicHeader(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString('base64')}`;
}

export interface RegistryAuthOptions extends Timeouts {
  credentials?: CredentialLookup | undefined;
  /** Clock for token expiry (tests). */
  now?: (() => number) | undefined;
}

/**
 * Answers challenges and caches the resulting `Authorization` header per
 * registry and scope, so one pull asks for one token, not one per blob.
 */
export class RegistryAuth {
  readonly #options: RegistryAuthOptions;
  readonly #cache = new Map<string, { header: string; expires: number }>();

  constructor(options: RegistryAuthOptions = {}) {
    this.#options = options;
  }

  /** The cached header for this registry and scope, or undefined when none is cached or it expired. */
  cached(registry: string, scope: string): string | undefined {
    const entry = this.#cache.get(`${registry} ${scope}`);
    if (entry === undefined || entry.expires <= this.#now()) return undefined;
    return entry.header;
  }

  /**
   * Answers a challenge with a fresh header (never the cached one: the caller
   * got 401 with it) and caches it. Fails with ERR_REGISTRY_AUTH when the
   * registry wants credentials banger does not have or rejects the ones it has.
   */
  async authorize(registry: string, challenge: Challenge, scope: string, signal?: AbortSignal): Promise<string> {
    const credentials = await this.#options.credentials?.(registry);
    let header: string;
    let lifetimeMs = Number.POSITIVE_INFINITY;
    if (challenge.scheme === 'basic') {
      if (credentials === undefined) {
        throw new BangerError('ERR_REGISTRY_AUTH', `${registry} requires a login`, { hint: `log in with \`docker login ${registry}\`` });
      }
      header = basicHeader(credentials);
    } else {
      const token = await this.#fetchToken(registry, challenge, challenge.scope ?? scope, credentials, signal);
      header = `Bearer ${token.token}`;
      lifetimeMs = token.seconds * 1000 - EXPIRY_MARGIN_MS;
    }
    this.#cache.set(`${registry} ${scope}`, { header, expires: this.#now() + lifetimeMs });
    return header;
  }

  async #fetchToken(
    registry: string,
    challenge: Extract<Challenge, { scheme: 'bearer' }>,
    scope: string,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ token: string; seconds: number }> {
    let url: URL;
    try {
      url = new URL(challenge.realm);
    } catch {
      throw new BangerError('ERR_REGISTRY_AUTH', `${registry} named an invalid token realm ${JSON.stringify(challenge.realm)}`);
    }
    if (challenge.service !== undefined) url.searchParams.set('service', challenge.service);
    url.searchParams.set('scope', scope);
    const exchange = await Exchange.open(url.href, {
      headers: credentials === undefined ? {} : { authorization: basicHeader(credentials) },
      signal,
      responseTimeoutMs: this.#options.responseTimeoutMs,
      stallTimeoutMs: this.#options.stallTimeoutMs,
    });
    const status = exchange.response.status;
    if (status === 401 || status === 403) {
      exchange.discard();
      throw new BangerError(
        'ERR_REGISTRY_AUTH',
        credentials === undefined ? `${registry} refused an anonymous token for ${scope}` : `${registry} rejected the credentials of ${credentials.username}`,
        { hint: credentials === undefined ? `log in with \`docker login ${registry}\`` : `check the login for ${registry} (docker config.json)` },
      );
    }
    if (!exchange.response.ok) {
      exchange.discard();
      throw new BangerError('ERR_DOWNLOAD_FAILED', `${registry} token service answered HTTP ${status}`, { hint: 'retry; the registry may be having trouble' });
    }
    let body: unknown;
    try {
      body = JSON.parse((await exchange.bytes(TOKEN_LIMIT_BYTES)).toString('utf8'));
    } catch (error) {
      if (error instanceof BangerError) throw error;
      throw new BangerError('ERR_DOWNLOAD_FAILED', `${registry} token service sent invalid JSON`, { cause: error });
    }
    const { token, access_token: accessToken, expires_in: expiresIn } = (body ?? {}) as { token?: unknown; access_token?: unknown; expires_in?: unknown };
    const value = typeof token === 'string' && token !== '' ? token : typeof accessToken === 'string' && accessToken !== '' ? accessToken : undefined;
    if (value === undefined) throw new BangerError('ERR_DOWNLOAD_FAILED', `${registry} token service sent no token`);
    return { token: value, seconds: typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : DEFAULT_TOKEN_SECONDS };
  }

  #now(): number {
    return (this.#options.now ?? Date.now)();
  }
}
