import { closeSync, existsSync, openSync, readSync, rmSync, statSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';

import * as names from '../../config/filenames.js';
import type { Layout } from '../../config/paths.js';
import { BangerError } from '../../rpc/errors.js';
import { IMAGE_NAME } from '../../rpc/schemas.js';
import { mustPass } from '../../rpc/validation.js';
import type { ImageRecord, ImagesRepo, ImageSpec } from '../../store/images-repo.js';
import { newId, resolveRef } from '../../store/records.js';
import type { KernelService } from '../kernel/kernel-service.js';
import type { OpContext } from '../op-context.js';
import { SharedWork } from '../shared-work.js';
import { publishStaged, sweepStaging } from '../staging.js';
import { FAILPOINTS, failpoint } from '../failpoints.js';
import { resolveBuildHost, type BuildHost } from './build-namespace.js';
import { IMAGE_CATALOG, type ImageCatalogEntry } from './catalog.js';
import { packExt4 } from './ext4-pack.js';
import { buildDebianRoot } from './rootfs-builder.js';
import { formatReference, parseReference } from '../oci/reference.js';
import { looksLikeReference, RegistryImages, type PullOptions, type RegistryImagesDeps } from './registry-images.js';

/**
 * Builds a catalog image's root filesystem into the tarball `target`, owners
 * as numbers (the real one runs mmdebstrap).
 */
export type RootBuilder = (entry: ImageCatalogEntry, target: string, host: BuildHost, ctx: OpContext) => Promise<void>;

/** Name of the root tarball inside a pull's staging dir; removed once packed. */
const ROOT_TARBALL = 'rootfs.tar';

export interface ImageServiceDeps {
  layout: Layout;
  images: ImagesRepo;
  kernels: KernelService;
  mirror: string;
  /** Injected by tests; defaults to mmdebstrap from the configured mirror. */
  buildRoot?: RootBuilder;
  /** Injected by tests; defaults to the embedded catalog. */
  catalog?: readonly ImageCatalogEntry[];
  /** Registry pulls: credentials, insecure registries, the SSH server bundle. */
  registry: Omit<RegistryImagesDeps, 'layout' | 'images' | 'kernels'>;
}

const EXT4_MAGIC_OFFSET = 1024 + 0x38;

/**
 * Images: a read-only ext4 root shared by every VM made from it, plus the
 * kernel it boots with. Pulled from the catalog (built on the host), or
 * registered from a file (left in place until promoted into banger's
 * directory). Like kernels, pulls build in a staging dir and publish by
 * rename + record: nothing half-built is ever visible, a failure leaves
 * nothing behind, pulls of different names run side by side, and pulls of
 * one name join.
 */
export class ImageService {
  readonly #deps: ImageServiceDeps;
  readonly #catalog: readonly ImageCatalogEntry[];
  /** Pulls in progress by name (see SharedWork: joiners, per-caller cancel). */
  readonly #pulling = new SharedWork<ImageRecord>();
  readonly #registry: RegistryImages;

  constructor(deps: ImageServiceDeps) {
    this.#deps = deps;
    this.#catalog = deps.catalog ?? IMAGE_CATALOG;
    this.#registry = new RegistryImages({ ...deps.registry, layout: deps.layout, images: deps.images, kernels: deps.kernels });
  }

  list(): ImageRecord[] {
    return this.#deps.images.list();
  }

  /** An image by exact id (for references held by VMs); undefined when gone. */
  byId(id: string): ImageRecord | undefined {
    return this.#deps.images.getById(id);
  }

  find(ref: string): ImageRecord {
    return resolveRef(this.#deps.images.list(), ref, 'image');
  }

  dir(image: ImageRecord): string {
    return join(this.#deps.layout.imagesDir, image.id);
  }

  catalog(): { name: string; description: string; kernel: string; pulled: boolean }[] {
    return this.#catalog.map((e) => ({
      name: e.name,
      description: e.description,
      kernel: e.kernel,
      pulled: this.#deps.images.getByName(e.name) !== undefined,
    }));
  }

  /** Whether `name` can be pulled (vm create auto-pulls catalog images). */
  inCatalog(name: string): boolean {
    return this.#catalog.some((e) => e.name === name);
  }

  /**
   * Pulls an image: a catalog name (built on this host), an image already
   * here by name (a registry image is checked for a newer digest), or a
   * registry reference (`debian:bookworm`, `localhost:5000/team/dev:1`).
   */
  async pull(source: string, ctx: OpContext, options: PullOptions = {}): Promise<{ image: ImageRecord; pulled: boolean }> {
    const existing = this.#deps.images.getByName(source);
    if (existing?.spec.oci !== undefined && options.name === undefined) {
      return await this.#registry.pull(parseReference(existing.spec.oci.ref), { ...options, name: existing.name }, ctx);
    }
    if (existing !== undefined) return { image: existing, pulled: false };
    const entry = this.#catalog.find((e) => e.name === source);
    if (entry !== undefined) {
      const image = await this.#pulling.run(
        source,
        ctx,
        (shared) => this.#pullFromCatalog(entry, shared),
        `another pull of ${source} is in progress; waiting for it`,
      );
      return { image, pulled: true };
    }
    if (!looksLikeReference(source)) {
      throw new BangerError('ERR_NOT_FOUND', `no image named "${source}" here or in the catalog`, {
        hint: `catalog images: ${this.#catalog.map((e) => e.name).join(', ')}; a registry image is named like docker does (debian:bookworm, localhost:5000/team/dev:1)`,
      });
    }
    const ref = parseReference(source);
    if (options.name !== undefined && this.inCatalog(options.name)) {
      throw new BangerError('ERR_ALREADY_EXISTS', `"${options.name}" is a catalog image name`, { hint: 'pick another --name' });
    }
    return await this.#registry.pull(ref, options, ctx);
  }

  /** The registry image pulled from `source` (a reference as typed), if any. */
  findByReference(source: string): ImageRecord | undefined {
    if (!looksLikeReference(source)) return undefined;
    let wanted: string;
    try {
      wanted = formatReference(parseReference(source));
    } catch {
      return undefined;
    }
    return this.#deps.images.list().find((image) => image.spec.oci?.ref === wanted);
  }

  async #pullFromCatalog(entry: ImageCatalogEntry, ctx: OpContext): Promise<ImageRecord> {
    // Before any work: a host that cannot build (tools, subordinate ids) fails at once.
    const host = resolveBuildHost();
    const { kernel } = await this.#deps.kernels.pull(entry.kernel, ctx);
    const build =
      this.#deps.buildRoot ??
      ((e: ImageCatalogEntry, target: string, h: BuildHost, c: OpContext) =>
        buildDebianRoot(e, this.#deps.mirror, target, join(this.#deps.layout.cacheDir, names.APT_CACHE_DIR), h, c));
    const id = newId();
    return publishStaged(
      this.#deps.layout.imagesDir,
      id,
      async (staging) => {
        const tarball = join(staging, ROOT_TARBALL);
        await build(entry, tarball, host, ctx);
        failpoint(FAILPOINTS.imagePull);
        const sizeBytes = await packExt4(tarball, join(staging, names.IMAGE_ROOTFS), host, ctx);
        rmSync(tarball, { force: true });
        return sizeBytes;
      },
      (final, sizeBytes) => {
        if (this.#deps.images.getByName(entry.name) !== undefined) {
          throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${entry.name}" was added while this one was being built`);
        }
        const spec: ImageSpec = {
          rootfs: join(final, names.IMAGE_ROOTFS),
          managed: true,
          sizeBytes,
          recipe: { suite: entry.suite, packages: [...entry.packages], mirror: this.#deps.mirror },
        };
        const image = this.#deps.images.insert({ id, name: entry.name, state: 'ready', source: 'catalog', kernelId: kernel.id, spec });
        ctx.log.info({ image: entry.name, id }, 'image published');
        return image;
      },
      ctx.signal,
    );
  }

  /** Registers an ext4 root filesystem where it lies, with a kernel to boot it. */
  register(name: string, rootfs: string, kernelRef: string): ImageRecord {
    mustPass(IMAGE_NAME.check(name), 'image name');
    if (this.#deps.images.getByName(name) !== undefined) {
      throw new BangerError('ERR_ALREADY_EXISTS', `an image named "${name}" already exists`, {
        hint: `delete it first with \`banger image delete ${name}\`, or pick another name`,
      });
    }
    assertExt4(rootfs);
    const kernel = this.#deps.kernels.find(kernelRef);
    return this.#deps.images.insert({
      id: newId(),
      name,
      state: 'ready',
      source: 'register',
      kernelId: kernel.id,
      spec: { rootfs, managed: false, sizeBytes: statSync(rootfs).size },
    });
  }

  /** Copies a registered image's rootfs into banger's own directory, so the original may go. */
  promote(ref: string, ctx: OpContext): Promise<ImageRecord> {
    const image = this.find(ref);
    if (image.spec.managed) {
      throw new BangerError('ERR_INVALID_ARGUMENT', `image ${image.name} is already managed by banger`, { hint: 'only registered images need promoting' });
    }
    assertExt4(image.spec.rootfs);
    ctx.progress('copy', `copying ${image.spec.rootfs} into banger's image store`);
    return publishStaged(
      this.#deps.layout.imagesDir,
      image.id,
      async (staging) => {
        await copyFile(image.spec.rootfs, join(staging, names.IMAGE_ROOTFS));
      },
      (final) => {
        const spec: ImageSpec = { ...image.spec, rootfs: join(final, names.IMAGE_ROOTFS), managed: true };
        this.#deps.images.updateSpec(image.id, spec);
        return { ...image, spec };
      },
      ctx.signal,
    );
  }

  /** Deletes an image; refused while a VM uses it. A registered image's file is left alone. */
  delete(ref: string): ImageRecord {
    const image = this.find(ref);
    const users = this.#deps.images.vmsUsing(image.id);
    if (users.length > 0) {
      throw new BangerError('ERR_IN_USE', `image ${image.name} is used by VM${users.length > 1 ? 's' : ''} ${users.join(', ')}`, {
        hint: 'delete those VMs first',
      });
    }
    this.#deps.images.delete(image.id);
    if (image.spec.managed) rmSync(this.dir(image), { recursive: true, force: true });
    return image;
  }

  sweepStaging(): void {
    sweepStaging(this.#deps.layout.imagesDir);
  }
}

/** Refuses anything that is not a readable ext2/3/4 filesystem image. */
function assertExt4(path: string): void {
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new BangerError('ERR_NOT_FOUND', `${path} is not a file`, { hint: 'pass the absolute path of an ext4 root filesystem image' });
  }
  const magic = Buffer.alloc(2);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, magic, 0, 2, EXT4_MAGIC_OFFSET);
  } finally {
    closeSync(fd);
  }
  if (magic.readUInt16LE(0) !== 0xef53) {
    throw new BangerError('ERR_INVALID_ARGUMENT', `${path} is not an ext4 filesystem image`, { hint: 'build one with mkfs.ext4 -d <dir> <file> <size>' });
  }
}
