/**
 * The four manifest formats a registry serves for an image, and picking one
 * platform's image out of a multi-platform list. Docker's schema2 formats and
 * OCI's are the same shape with different media types; a manifest list and
 * an OCI index both list per-platform manifests. Schema1 is not supported.
 */
import { BangerError } from '../../rpc/errors.js';

export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

/** What banger asks registries for by default, in this order of preference. */
export const DEFAULT_ACCEPT: readonly string[] = [MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest];

const IMAGE_TYPES = new Set<string>([MEDIA_TYPES.dockerManifest, MEDIA_TYPES.ociManifest]);
const INDEX_TYPES = new Set<string>([MEDIA_TYPES.dockerList, MEDIA_TYPES.ociIndex]);
const DIGEST = /^sha256:[a-f0-9]{64}$/;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

export interface Descriptor {
  mediaType: string;
  /** Always `sha256:<64 hex>`: descriptors with other algorithms are refused when parsed. */
  digest: string;
  size: number;
  platform?: Platform | undefined;
}

export type Manifest =
  | { kind: 'image'; mediaType: string; config: Descriptor; layers: Descriptor[] }
  | { kind: 'index'; mediaType: string; manifests: Descriptor[] };

export const LINUX_AMD64: Platform = { os: 'linux', architecture: 'amd64' };

function malformed(what: string, why: string): BangerError {
  return new BangerError('ERR_DOWNLOAD_FAILED', `the manifest of ${what} is malformed: ${why}`, { hint: 'the registry sent something banger cannot read' });
}

function descriptor(value: unknown, what: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw malformed(what, 'a descriptor is not an object');
  const { mediaType, digest, size, platform } = value as Record<string, unknown>;
  if (typeof digest !== 'string' || !DIGEST.test(digest)) throw malformed(what, `digest ${JSON.stringify(digest)} is not sha256:<64 hex>`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw malformed(what, `descriptor ${digest} has no valid size`);
  let parsedPlatform: Platform | undefined;
  if (typeof platform === 'object' && platform !== null) {
    const { os, architecture, variant } = platform as Record<string, unknown>;
    if (typeof os === 'string' && typeof architecture === 'string') {
      parsedPlatform = { os, architecture, ...(typeof variant === 'string' ? { variant } : {}) };
    }
  }
  return { mediaType: typeof mediaType === 'string' ? mediaType : '', digest, size, ...(parsedPlatform === undefined ? {} : { platform: parsedPlatform }) };
}

/**
 * Parses a manifest body. The media type is the body's `mediaType` field, else
 * the response's Content-Type (OCI manifests may omit the field).
 */
export function parseManifest(body: Buffer, contentType: string | null, what: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw malformed(what, 'it is not JSON');
  }
  if (typeof json !== 'object' || json === null) throw malformed(what, 'it is not a JSON object');
  const fields = json as Record<string, unknown>;
  const declared = typeof fields.mediaType === 'string' ? fields.mediaType : (contentType?.split(';')[0]?.trim() ?? '');
  const isIndex = INDEX_TYPES.has(declared) || (!IMAGE_TYPES.has(declared) && Array.isArray(fields.manifests));
  const isImage = IMAGE_TYPES.has(declared) || (!INDEX_TYPES.has(declared) && Array.isArray(fields.layers));
  if (fields.schemaVersion === 1) {
    throw new BangerError('ERR_DOWNLOAD_FAILED', `${what} uses the retired Docker schema 1 manifest format`, {
      hint: 'push the image again with a current docker or buildah',
    });
  }
  if (isIndex) {
    if (!Array.isArray(fields.manifests)) throw malformed(what, 'an index without "manifests"');
    return { kind: 'index', mediaType: declared, manifests: fields.manifests.map((entry) => descriptor(entry, what)) };
  }
  if (isImage) {
    if (!Array.isArray(fields.layers)) throw malformed(what, 'an image manifest without "layers"');
    return { kind: 'image', mediaType: declared, config: descriptor(fields.config, what), layers: fields.layers.map((entry) => descriptor(entry, what)) };
  }
  throw malformed(what, `unsupported media type ${JSON.stringify(declared)}`);
}

function platformText(platform: Platform | undefined): string {
  if (platform === undefined) return 'unknown';
  return `${platform.os}/${platform.architecture}${platform.variant === undefined ? '' : `/${platform.variant}`}`;
}

/**
 * The entry of an index for `platform` (os and architecture must match; a
 * wanted variant must match too). Fails with ERR_NOT_FOUND listing the
 * platforms the image does have.
 */
export function selectPlatform(index: Extract<Manifest, { kind: 'index' }>, what: string, platform: Platform = LINUX_AMD64): Descriptor {
  const found = index.manifests.find(
    (entry) =>
      entry.platform?.os === platform.os &&
      entry.platform.architecture === platform.architecture &&
      (platform.variant === undefined || entry.platform.variant === platform.variant),
  );
  if (found !== undefined) return found;
  const available = [...new Set(index.manifests.map((entry) => platformText(entry.platform)))].join(', ');
  throw new BangerError('ERR_NOT_FOUND', `${what} has no ${platformText(platform)} image (it has: ${available === '' ? 'none' : available})`, {
    hint: 'banger runs linux/amd64 guests; pick an image or tag built for that platform',
  });
}
