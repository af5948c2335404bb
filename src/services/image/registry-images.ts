import { rmSync } from 'node:fs';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import type { BundleFile } from '../../guest/dropbear.js';
import { BangerError } from '../../rpc/errors.js';
import { IMAGE_NAME } from '../../rpc/schemas.js';
import { mustPass } from '../../rpc/validation.js';
import type { ImageRecord, ImagesRepo, ImageSpec } from '../../store/images-repo.js';
import { newId } from '../../store/records.js';
import type { KernelService } from '../kernel/kernel-service.js';
import type { CredentialLookup } from '../oci/auth.js';
import { formatReference, type ImageReference } from '../oci/reference.js';
import { RegistryClient } from '../oci/registry-client.js';
import type { OpContext } from '../op-context.js';
import { SharedWork } from '../shared-work.js';
import { publishStaged } from '../staging.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import { resolveBuildHost, type BuildHost } from './build-namespace.js';
import { currentDigest, pullOciImage } from './oci-pull.js';

/**
 * Images pulled from OCI registries, by name: a first pull stages the ext4
 * (oci-pull.ts) and publishes it with its record; a pull of a name already
 * here asks the registry for the manifest only and does nothing more when
 * the digest is unchanged. A newer digest replaces the image, unless VMs use
 * it (ERR_IN_USE: pull it under another name). Pulls of different names run
 * side by side; pulls of one name join (SharedWork), and the publish
 * re-checks the name, so exactly one image results.
 */

/** The kernel registry images boot with unless the pull names another. */
export const DEFAULT_REGISTRY_KERNEL = 'debian-bookworm-cloud';

export interface PullOptions {
  /** Name for the image (default: from the reference, e.g. `node-22`). */
  name?: string | undefined;
  /** Kernel to boot it with: name or id, or a catalog kernel (pulled). */
  kernel?: string | undefined;
}

export interface RegistryImagesDeps {
  layout: Layout;
  images: ImagesRepo;
  kernels: Pick<KernelService, 'find' | 'pull' | 'catalog'>;
  /** Registries besides loopback ones that may be spoken to over plain HTTP. */
  insecure: readonly string[];
  /** Read at each pull (a `docker login` meanwhile takes effect). */
  credentials: () => CredentialLookup | undefined;
  /** banger's SSH server files for the guest (guest/dropbear.ts). */
  sshBundle: () => Promise<BundleFile[]>;
  /** Injected by tests; defaults to checking this host for rootless builds. */
  buildHost?: () => BuildHost;
}

/**
 * Whether text is meant as a registry reference rather than a local name:
 * local names never hold `/`, `:` or `@` (docker's own rule for short names
 * like `busybox` is not used: those are banger image names first).
 */
export function looksLikeReference(text: string): boolean {
  return /[/:@]/.test(text);
}

/** A local image name from a reference: its last path component and tag, e.g. `node-22`; the digest's start when pinned. */
export function defaultImageName(ref: ImageReference): string {
  const last = ref.repository.split('/').pop() ?? 'image';
  const suffix = ref.digest !== undefined ? ref.digest.slice(7, 19) : (ref.tag ?? 'latest');
  return `${last}-${suffix}`
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/-+/g, '-')
    .slice(0, 63)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
}

export class RegistryImages {
  readonly #deps: RegistryImagesDeps;
  readonly #pulling = new SharedWork<{ image: ImageRecord; pulled: boolean }>();

  constructor(deps: RegistryImagesDeps) {
    this.#deps = deps;
  }

  async pull(ref: ImageReference, options: PullOptions, ctx: OpContext): Promise<{ image: ImageRecord; pulled: boolean }> {
    const text = formatReference(ref);
    const name = options.name ?? defaultImageName(ref);
    mustPass(IMAGE_NAME.check(name), 'image name');
    const existing = this.#deps.images.getByName(name);
    if (existing !== undefined && existing.spec.oci?.ref !== text) {
      throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${name}" already exists (${existing.spec.oci?.ref ?? existing.source})`, {
        hint: `pull ${text} under another name with --name, or delete ${name} first`,
      });
    }
    return await this.#pulling.run(name, ctx, (shared) => this.#pull(ref, name, options, shared), `another pull of ${name} is in progress; waiting for it`);
  }

  async #pull(ref: ImageReference, name: string, options: PullOptions, ctx: OpContext): Promise<{ image: ImageRecord; pulled: boolean }> {
    const text = formatReference(ref);
    const client = new RegistryClient({ insecure: this.#deps.insecure, credentials: this.#deps.credentials() });
    const existing = this.#deps.images.getByName(name);
    if (existing?.spec.oci !== undefined) {
      ctx.progress('manifest', `checking ${text} for a newer image`);
      if ((await currentDigest(client, ref, ctx.signal)) === existing.spec.oci.digest) {
        ctx.progress('manifest', `${name} is up to date (${existing.spec.oci.digest.slice(0, 19)})`);
        return { image: existing, pulled: false };
      }
      const users = this.#deps.images.vmsUsing(existing.id);
      if (users.length > 0) {
        throw new BangerError('ERR_IN_USE', `${text} has a newer image, but ${name} is used by ${users.join(', ')}`, {
          hint: `pull it under another name (--name), or delete those VMs first`,
        });
      }
    }
    // Before any download: a host that cannot build rootless, or has no dropbear, fails at once.
    const host = (this.#deps.buildHost ?? resolveBuildHost)();
    const bundle = await this.#deps.sshBundle();
    const kernel = await this.#kernel(options.kernel, ctx);
    const id = newId();
    const image = await publishStaged(
      this.#deps.layout.imagesDir,
      id,
      async (staging) => {
        const result = await pullOciImage(
          { client, ref, blobCache: join(this.#deps.layout.cacheDir, names.OCI_CACHE_DIR), staging, host, bundle },
          join(staging, names.IMAGE_ROOTFS),
          ctx,
        );
        failpoint(FAILPOINTS.imagePull);
        return result;
      },
      (final, result) => {
        const current = this.#deps.images.getByName(name);
        if (current !== undefined && current.id !== existing?.id) {
          throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${name}" was added while this one was being pulled`);
        }
        const spec: ImageSpec = {
          rootfs: join(final, names.IMAGE_ROOTFS),
          managed: true,
          sizeBytes: result.sizeBytes,
          oci: { ref: text, digest: result.digest, run: result.run },
          sshServer: 'banger',
        };
        const record = { id, name, state: 'ready' as const, source: 'registry' as const, kernelId: kernel.id, spec };
        const published = existing === undefined ? this.#deps.images.insert(record) : this.#deps.images.replace(existing.id, record);
        ctx.log.info({ image: name, id, ref: text, digest: result.digest, layers: result.layers, downloaded: result.downloadedBytes }, 'image published');
        return published;
      },
      ctx.signal,
    );
    if (existing !== undefined) rmSync(join(this.#deps.layout.imagesDir, existing.id), { recursive: true, force: true });
    return { image, pulled: true };
  }

  /** The kernel a pull names (an existing one, or a catalog kernel pulled now), else the default. */
  async #kernel(ref: string | undefined, ctx: OpContext): Promise<{ id: string }> {
    const wanted = ref ?? DEFAULT_REGISTRY_KERNEL;
    if (this.#deps.kernels.catalog().some((entry) => entry.name === wanted)) return (await this.#deps.kernels.pull(wanted, ctx)).kernel;
    return this.#deps.kernels.find(wanted);
  }
}
