/**
 * Image references as docker writes them: `[registry/]repository[:tag][@digest]`.
 *
 * Normalisation follows docker: a first path component that has no `.` or
 * `:` and is not `localhost` is part of the repository, not a registry, and
 * such references live on Docker Hub (`docker.io`, served by
 * `registry-1.docker.io`); a single-component Hub repository gets the
 * `library/` prefix; a reference with neither tag nor digest means `:latest`.
 */
import { isIP } from 'node:net';

import { BangerError } from '../../rpc/errors.js';

export interface ImageReference {
  /** The registry as named in references: `docker.io`, `localhost:5000`, `[::1]:5000`. */
  registry: string;
  /** Host (and port) the registry API is served from; `registry-1.docker.io` for `docker.io`. */
  endpoint: string;
  /** Repository path inside the registry, e.g. `library/debian`. */
  repository: string;
  /** The tag; `latest` when the reference had neither tag nor digest, undefined for a digest-only reference. */
  tag: string | undefined;
  /** `sha256:<64 hex>` when pinned; it wins over the tag when both are given. */
  digest: string | undefined;
}

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

/** From the distribution spec's reference grammar. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;
const MAX_NAME_LENGTH = 255;

const HINT = 'write it like docker does: [registry/]repository[:tag][@sha256:<64 hex>], e.g. debian:bookworm or localhost:5000/team/dev:1';

function invalid(text: string, why: string): BangerError {
  return new BangerError('ERR_INVALID_ARGUMENT', `${JSON.stringify(text)} is not a valid image reference: ${why}`, { hint: HINT });
}

export function parseReference(text: string): ImageReference {
  if (text === '' || text !== text.trim()) throw invalid(text, 'it is empty or has surrounding spaces');
  let rest = text;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(text, `the digest ${JSON.stringify(digest)} is not sha256:<64 lowercase hex>`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(text, `the tag ${JSON.stringify(tag)} may hold only letters, digits, _ . - (at most 128, not starting with . or -)`);
  }
  const slash = rest.indexOf('/');
  const first = slash === -1 ? '' : rest.slice(0, slash);
  const hasRegistry = first.includes('.') || first.includes(':') || first === 'localhost';
  let registry = hasRegistry ? first : DOCKER_HUB;
  let repository = hasRegistry ? rest.slice(slash + 1) : rest;
  if (hasRegistry && !HOST.test(registry)) throw invalid(text, `${JSON.stringify(registry)} is not a registry host[:port]`);
  if (registry === 'index.docker.io') registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (repository === '') throw invalid(text, 'the repository name is missing');
  if (repository.length > MAX_NAME_LENGTH) throw invalid(text, `the repository name is longer than ${MAX_NAME_LENGTH} characters`);
  for (const component of repository.split('/')) {
    if (!PATH_COMPONENT.test(component)) {
      const why = /[A-Z]/.test(component) ? 'repository names must be lowercase' : 'path components are lowercase letters and digits separated by . _ __ or -';
      throw invalid(text, `${JSON.stringify(component)}: ${why}`);
    }
  }
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry, repository, tag, digest };
}

/** The canonical text of a reference: `docker.io/library/debian:bookworm`. */
export function formatReference(ref: ImageReference): string {
  return `${ref.registry}/${ref.repository}${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
}

/** What goes after `/manifests/`: the digest when pinned, else the tag. */
export function manifestReference(ref: ImageReference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** The host part of `host[:port]` or `[v6]:port`, without brackets, lowercased. */
export function hostOf(registry: string): string {
  if (registry.startsWith('[')) return registry.slice(1, registry.indexOf(']')).toLowerCase();
  const colon = registry.indexOf(':');
  return (colon === -1 ? registry : registry.slice(0, colon)).toLowerCase();
}

/**
 * Plain HTTP is allowed only for loopback registries (which never leave the
 * machine) and for registries the user listed as insecure (matched as
 * written, `host:port`, or by host alone). Everything else must be HTTPS.
 */
export function allowsPlainHttp(registry: string, insecure: readonly string[] = []): boolean {
  const host = hostOf(registry);
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4 && host.startsWith('127.')) return true;
  return insecure.some((entry) => entry.toLowerCase() === registry.toLowerCase() || entry.toLowerCase() === host);
}

/**
 * The base URL of the registry API (`…/v2`). Registries that allow plain HTTP
 * are spoken to over HTTP; there is no HTTPS-first fallback yet (TODO: docker
 * tries HTTPS first for insecure registries).
 */
export function registryBaseUrl(ref: ImageReference, insecure: readonly string[] = []): string {
  return `${allowsPlainHttp(ref.endpoint, insecure) ? 'http' : 'https'}://${ref.endpoint}/v2`;
}
